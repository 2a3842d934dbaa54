package store

// SetSQLiteIndexBatch sets how many search documents wait before an append indexes
// them (store_sqlite_index.go) and returns a function that restores the old value.
func SetSQLiteIndexBatch(n int64) (restore func()) {
	old := sqliteIndexBatch
	sqliteIndexBatch = n
	return func() { sqliteIndexBatch = old }
}

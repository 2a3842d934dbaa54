package store

import (
	"context"
	"fmt"
	"time"
)

// ProbeWrite proves the database takes writes now: it commits one row to a table
// of its own (created on first use, outside the migrations: it holds nothing
// else reads). Readiness calls it: Ping answers while a full disk or a read-only
// file refuses every write. The error names the file and the cause.
func (s *SQLiteStore) ProbeWrite(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS natter_write_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)`)
	if err == nil {
		_, err = s.w.ExecContext(ctx, `INSERT INTO natter_write_probe (id, at) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixMilli())
	}
	if err != nil {
		return fmt.Errorf("sqlite: write probe: %w", err)
	}
	return nil
}

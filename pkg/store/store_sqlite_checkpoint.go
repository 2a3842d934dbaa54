package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// Checkpoints (copying the WAL's pages into the database file) run in the
// background, on a connection of their own, not in the writer's commits.
//
// SQLite's default checkpoints in the commit that takes the WAL past 1,000 pages,
// so every few hundred messages one persister batch also copied ~4 MB and synced
// the database file; and a page the batches write again and again (a chat row, an
// index's inner pages) was copied once per 1,000 pages written. BenchmarkSQLitePersist
// measured the copies at about 40 % of the bytes the persister writes. Now a PASSIVE
// checkpoint runs every sqliteCheckpointEvery: it never blocks the writer or
// readers, and copies each page once however often it was written meanwhile.
//
// Durability does not depend on checkpoints: a commit is durable once its WAL
// frames are synced (synchronous=FULL), and after a crash SQLite reads the WAL.
//
// The WAL stays bounded: the writer still checkpoints itself when the WAL
// reaches sqliteWALBackstop pages (the background one failing or starved), and
// journal_size_limit truncates a WAL file that grew past that once it restarts.
var (
	sqliteCheckpointEvery = time.Second
	// sqliteWALBackstop is the writer's wal_autocheckpoint, in pages of 4 KiB.
	sqliteWALBackstop = 16_000
	// sqliteWALLimit is journal_size_limit, in bytes.
	sqliteWALLimit = 64 << 20
)

// checkpointer runs PASSIVE checkpoints on its own connection until stopped.
type checkpointer struct {
	db     *sql.DB
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startCheckpointer opens the checkpointer's connection with dsn and starts it.
func startCheckpointer(dsn string) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, cancel: cancel}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(sqliteCheckpointEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// An error (another process checkpointing, a busy file) leaves the
				// frames for the next tick or the writer's backstop.
				_, _ = db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
			}
		}
	}()
	return c, nil
}

// stop ends the checkpointer and closes its connection; nil-safe.
func (c *checkpointer) stop() error {
	if c == nil {
		return nil
	}
	c.cancel()
	c.done.Wait()
	return c.db.Close()
}

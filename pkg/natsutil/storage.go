package natsutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Errors of a StorageWatch (wrapped with the server's own words about the cause).
var (
	// ErrStorageFull is JetStream out of disk space (ENOSPC) or over its storage
	// limit: nothing can be stored until space is freed.
	ErrStorageFull = errors.New("JetStream storage is full")
	// ErrStorageFailed is JetStream unable to write its store for another reason
	// (an I/O or permission error, or JetStream disabled).
	ErrStorageFailed = errors.New("JetStream cannot store")
)

// Timing of a StorageWatch; package variables so tests can shorten them.
var (
	// StoragePollInterval is how often the watch looks at the embedded server's
	// health (it also looks at once when the server logs an error).
	StoragePollInterval = time.Second
	// StorageRestartBackoff is the first pause between JetStream restarts that
	// did not clear the failure; it doubles up to StorageRestartMaxBackoff.
	StorageRestartBackoff    = time.Second
	StorageRestartMaxBackoff = 30 * time.Second
	// StorageExternalHold is how long a storage error reported by an external
	// server is assumed to last: sends fail fast meanwhile, then the next ones ask
	// the server again.
	StorageExternalHold = 2 * time.Second
)

// storageProbeBytes is the size of the file the watch writes to tell whether
// the embedded store's disk has room again: enough for JetStream to write its
// index files and the next messages, not only a few bytes.
const storageProbeBytes = 1 << 20

// StorageWatch tells whether JetStream can store messages now, so that sends fail
// at once with the cause instead of waiting for a timeout, readiness reports it,
// and the embedded server recovers by itself when its disk has room again.
//
// With the embedded server, a write error (ENOSPC on its disk) leaves the stream
// refusing every write until JetStream restarts: the server neither answers the
// publishes nor recovers by itself. The watch sees it in the server's health,
// waits until a 1 MiB file can be written to the store directory, then restarts
// JetStream in place (connections stay up; streams and consumers are recovered
// from disk, with everything acknowledged before the failure).
//
// With an external server the watch knows only what publishes report
// (Report): a storage error holds for StorageExternalHold, then the next sends
// ask the server again. A clustered server that runs out of space disables its
// own JetStream and its stream leaders move to the other nodes; recovering that
// node is the operator's (docs/operations.md, "Disk full").
type StorageWatch struct {
	log      *zap.Logger
	ns       *server.Server // the embedded server; nil for an external one
	jscfg    server.JetStreamConfig
	storeDir string
	kickc    chan struct{}

	mu      sync.Mutex // guards the fields below
	err     error      // nil while storing works
	until   time.Time  // external: err holds until then
	tripped chan struct{}
}

// NewStorageWatch returns the watch of an external server's storage, fed by
// Report. An embedded server's watch comes with it from StartEmbedded.
func NewStorageWatch(log *zap.Logger) *StorageWatch {
	return &StorageWatch{log: log, kickc: make(chan struct{}, 1), tripped: make(chan struct{})}
}

func newEmbeddedStorageWatch(ns *server.Server, opts *server.Options, log *zap.Logger) *StorageWatch {
	w := NewStorageWatch(log)
	w.ns, w.storeDir = ns, opts.StoreDir
	w.jscfg = server.JetStreamConfig{StoreDir: opts.StoreDir, SyncAlways: opts.SyncAlways, SyncInterval: opts.SyncInterval,
		Strict: !opts.NoJetStreamStrict, CompressOK: true}
	return w
}

// Err is nil while JetStream can store, else why not: an error wrapping
// ErrStorageFull or ErrStorageFailed. Safe on a nil watch (nil).
func (w *StorageWatch) Err() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil && w.ns == nil && time.Now().After(w.until) {
		w.setLocked(nil)
	}
	return w.err
}

// Tripped is closed when storing fails: a send waiting for its acknowledgement
// gives up then instead of waiting for its timeout. Safe on a nil watch (never
// closed).
func (w *StorageWatch) Tripped() <-chan struct{} {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tripped
}

// Report tells the watch the outcome of a publish: a storage error (see
// StorageError) makes Err fail. Other errors, and nil, change nothing. Safe on a
// nil watch.
func (w *StorageWatch) Report(err error) {
	serr := StorageError(err)
	if w == nil || serr == nil {
		return
	}
	if w.ns != nil { // the server's health says more than one publish
		w.kick()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.until = time.Now().Add(StorageExternalHold)
	if w.err == nil {
		w.setLocked(serr)
	}
}

// StorageError classifies err, a publish or server error: an error wrapping
// ErrStorageFull or ErrStorageFailed with err's words, or nil when err is not
// about storage.
func StorageError(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10023, 10047: // insufficient resources; insufficient storage resources
			return fmt.Errorf("%w: %s", ErrStorageFull, apiErr.Description)
		}
	}
	return storageErrorText(err.Error())
}

func storageErrorText(s string) error {
	switch {
	case strings.Contains(s, "no space left"), strings.Contains(s, "resource limits exceeded"),
		strings.Contains(s, "insufficient storage"):
		return fmt.Errorf("%w: %s", ErrStorageFull, s)
	case strings.Contains(s, "write error"), strings.Contains(s, "permission denied"),
		strings.Contains(s, "read-only file system"), strings.Contains(s, "JetStream not enabled"),
		strings.Contains(s, "jetstream not enabled"):
		return fmt.Errorf("%w: %s", ErrStorageFailed, s)
	}
	return nil
}

// setLocked records err (nil: recovered), logging the change once.
func (w *StorageWatch) setLocked(err error) {
	switch {
	case err != nil && w.err == nil:
		w.log.Error("JetStream cannot store messages: sends are refused (storage_full or unavailable) and /readyz is unready until it recovers",
			zap.Error(err))
		close(w.tripped)
	case err == nil && w.err != nil:
		w.log.Info("JetStream stores messages again", zap.NamedError("was", w.err))
		w.tripped = make(chan struct{})
	}
	w.err = err
}

func (w *StorageWatch) kick() {
	select {
	case w.kickc <- struct{}{}:
	default:
	}
}

// Run watches the embedded server until ctx ends: it polls its health (and looks
// at once when the server logs an error) and restarts JetStream when a failed
// store has room again. It returns at once for an external server's watch.
func (w *StorageWatch) Run(ctx context.Context) {
	if w == nil || w.ns == nil {
		return
	}
	t := time.NewTicker(StoragePollInterval)
	defer t.Stop()
	backoff, next := StorageRestartBackoff, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kickc:
		}
		failing := w.check()
		if !failing {
			backoff, next = StorageRestartBackoff, time.Time{}
			continue
		}
		if time.Now().Before(next) {
			continue
		}
		if err := writeProbe(w.storeDir, storageProbeBytes); err != nil {
			continue // still no room: nothing to restart for
		}
		w.restartJetStream()
		next = time.Now().Add(backoff)
		backoff = min(2*backoff, StorageRestartMaxBackoff)
		w.check()
	}
}

// check reads the embedded server's health into the watch and reports whether
// storing fails.
func (w *StorageWatch) check() (failing bool) {
	var err error
	if !w.ns.JetStreamEnabled() {
		err = fmt.Errorf("%w: JetStream is disabled", ErrStorageFailed)
	} else if h := w.ns.Healthz(&server.HealthzOptions{}); h.Error != "" {
		err = storageErrorText(h.Error)
		if err == nil { // not about storage (e.g. a stream still recovering)
			return false
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setLocked(err)
	return err != nil
}

// restartJetStream stops the embedded server's JetStream and starts it again
// from its store: the only way to clear a stream's write error.
func (w *StorageWatch) restartJetStream() {
	w.log.Warn("the JetStream store has room again: restarting JetStream to clear the write error", zap.String("store_dir", w.storeDir))
	if w.ns.JetStreamEnabled() {
		if err := w.ns.ShutdownJetStream(); err != nil {
			w.log.Error("stop JetStream", zap.Error(err))
			return
		}
	}
	cfg := w.jscfg
	if err := w.ns.EnableJetStream(&cfg); err != nil {
		w.log.Error("restart JetStream failed; retrying", zap.Error(err))
	}
}

// writeProbe writes and syncs n bytes in a file of its own in dir, then removes
// it: whether dir's disk really has that much room.
func writeProbe(dir string, n int) error {
	f, err := os.CreateTemp(dir, ".natter-space-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(make([]byte, n))
	serr := f.Sync()
	return errors.Join(werr, serr, f.Close())
}

package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/admin"
	"github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Process states reported by /readyz besides the dependency checks.
const (
	stateStarting int32 = iota
	stateRunning
	stateStopping
)

// startAdmin creates the process's metrics and starts the admin server (unless
// admin.listen is empty) with the readiness checks: started and not stopping, the
// NATS connection connected, the store answering, the gateway not draining. The
// checks read fields Start sets later, so each one is added once its dependency
// exists (see addChecks).
func (a *App) startAdmin() error {
	a.Metrics = metrics.New()
	srv, err := admin.Start(a.Config.Admin, a.Metrics.Registry, a.Log)
	if err != nil {
		return err
	}
	a.Admin = srv
	if srv == nil {
		return nil
	}
	a.Log.Info("admin server listening", zap.String("listen", srv.Addr().String()))
	srv.AddCheck(admin.Check{Name: "process", Check: func(context.Context) error {
		switch a.state.Load() {
		case stateStarting:
			return errors.New("starting")
		case stateStopping:
			return errors.New("stopping")
		}
		return nil
	}})
	return nil
}

// addChecks adds the dependency readiness checks and the scrape-time metrics of
// the roles; Start calls it once the dependencies and roles exist.
func (a *App) addChecks() {
	nc, gw := a.NC, a.Gateway
	a.Admin.AddCheck(admin.Check{Name: "nats", Check: func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", s)
		}
		return nil
	}})
	a.addWorkChecks() // readiness.go: jetstream, store (a write), persister lag
	if gw != nil {
		a.Admin.AddCheck(admin.Check{Name: "gateway", Check: func(context.Context) error {
			if gw.Draining() {
				return errors.New("draining: not accepting connections")
			}
			return nil
		}})
	}
	m := a.Metrics
	// The notifier's window bucket: its consumer's lag is how late closed windows'
	// notifications are (NOTIFIER_WINDOWS).
	m.WatchConsumers(a.JS, []string{subjects.InStream, subjects.LogStream}, []string{"KV_" + notifier.WindowBucket})
	if seq := a.Seq; seq != nil {
		stat := func(i int) func() float64 {
			return func() float64 {
				s, c, f := seq.Stats()
				return float64([]uint64{s, c, f}[i])
			}
		}
		for _, err := range []error{
			m.CounterFunc("sequencer_sequenced_total", "Messages appended to NATTER_LOG with a new chat sequence.", stat(0)),
			m.CounterFunc("sequencer_catchups_total", "Messages sequenced by a partition takeover's catch-up (left unacked by a previous holder).", stat(1)),
			m.CounterFunc("sequencer_fenced_total", "Appends refused by the expected-last-sequence fence (another sequencer appended first).", stat(2)),
			m.CounterFunc("sequencer_fanout_publishes_total", "Per-user fan-out publishes.", func() float64 { return float64(seq.FanoutPublishes()) }),
			m.CounterFunc("sequencer_log_batches_total", "Atomic batch appends to NATTER_LOG (a partition's drain of at least sequencer.batch-min messages; the log committer may combine several in one commit).", func() float64 { b, _, _ := seq.BatchStats(); return float64(b) }),
			m.CounterFunc("sequencer_log_batched_messages_total", "Messages appended to NATTER_LOG in atomic batches; the rest of sequencer_sequenced_total went one at a time.", func() float64 { _, n, _ := seq.BatchStats(); return float64(n) }),
			m.CounterFunc("sequencer_log_batch_fallbacks_total", "Atomic batch appends that failed and were sequenced one at a time instead.", func() float64 { _, _, f := seq.BatchStats(); return float64(f) }),
		} {
			if err != nil {
				a.Log.Warn("sequencer metrics", zap.Error(err))
			}
		}
	}
	if p := a.Persist; p != nil {
		if err := m.GaugeFunc("persister_parked_chats", "Chats this persister has parked because the store refuses their messages (retried with backoff; the other chats go on).",
			func() float64 { return float64(p.ParkedChats()) }); err != nil {
			a.Log.Warn("persister metrics", zap.Error(err))
		}
	}
}

// AdminAddr is the admin server's address (nil when admin.listen is empty).
func (a *App) AdminAddr() net.Addr {
	if a.Admin == nil {
		return nil
	}
	return a.Admin.Addr()
}

// firstToStop wraps a role that Close stops, and waits for, before the others: the
// gateway, whose drain still needs the sequencer to order and deliver what its
// connections send meanwhile.
type firstToStop struct {
	Role
	done chan struct{}

	mu     sync.Mutex // guards cancel
	cancel context.CancelFunc
}

func newFirstToStop(r Role) *firstToStop { return &firstToStop{Role: r, done: make(chan struct{})} }

// Run runs the role with a context stop can end.
func (f *firstToStop) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	f.cancel = cancel
	f.mu.Unlock()
	defer close(f.done)
	return f.Role.Run(ctx)
}

// stop ends the role's context and waits for Run to return (no-op on nil, or if
// Run never started).
func (f *firstToStop) stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	cancel := f.cancel
	f.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-f.done
}

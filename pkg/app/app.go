package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/admin"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/history"
	"github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/presence"
	"github.com/natter-chat/natter/sequencer"
	"go.uber.org/zap"
)

// Role is what every role package's New returns.
type Role interface {
	Run(ctx context.Context) error
}

// App is a running natter process: its shared dependencies and selected roles.
type App struct {
	Config  *Config
	Log     *zap.Logger
	Targets []string

	NATS     *server.Server // embedded server, nil with nats.url
	NC       *nats.Conn
	JS       jetstream.JetStream
	Store    store.Store
	Auth     *auth.Verifier
	Gateway  *gateway.Gateway
	Seq      *sequencer.Sequencer
	Persist  *persister.Persister
	Presence *presence.Presence
	Notifier *notifier.Notifier
	gwAddr   chan net.Addr
	addr     net.Addr
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errMu    sync.Mutex
	firstErr error

	// Metrics are the process's metrics; Admin serves them (nil: admin.listen "").
	Metrics *metrics.Metrics
	Admin   *admin.Server
	state   atomic.Int32 // stateStarting, stateRunning, stateStopping (observe.go)
	gwFirst *firstToStop // the gateway, stopped (drained) before the other roles

	closeOnce sync.Once
	closeErr  error
}

// Start sets up the dependencies the selected roles need and starts the roles. It
// returns once the gateway (if selected) listens. Stop with Close.
func Start(ctx context.Context, cfg *Config, log *zap.Logger) (a *App, err error) {
	targets, err := Targets(cfg.Roles)
	if err != nil {
		return nil, err
	}
	a = &App{Config: cfg, Log: log, Targets: targets, gwAddr: make(chan net.Addr, 1)}
	self := a // the named result is nil on the error returns
	defer func() {
		if err != nil {
			self.Close()
		}
	}()
	if err = a.startAdmin(); err != nil {
		return nil, err
	}
	if cfg.NATS.URL == "" {
		if a.NATS, err = natsutil.StartEmbedded(&cfg.NATS, cfg.DataDir); err != nil {
			return nil, err
		}
		where := cfg.NATS.Listen
		if a.NATS.Addr() != nil {
			where = a.NATS.ClientURL()
		}
		log.Info("embedded NATS server started", zap.String("store_dir", filepath.Join(cfg.DataDir, "nats")), zap.String("listen", where))
	}
	if a.NC, err = natsutil.Connect(&cfg.NATS, a.NATS, "natter "+fmt.Sprint(targets)); err != nil {
		return nil, err
	}
	if a.JS, err = jetstream.New(a.NC); err != nil {
		return nil, err
	}
	if err = ensureStreams(ctx, a.JS, &cfg.NATS, log); err != nil {
		return nil, fmt.Errorf("set up streams: %w", err)
	}
	if needs(targets, depStore) {
		if a.Store, err = OpenStore(ctx, cfg, log); err != nil {
			return nil, err
		}
		a.Store = metrics.InstrumentStore(a.Store, a.Metrics)
	}
	if needs(targets, depAuth) {
		if a.Auth, err = auth.NewVerifier(cfg.Auth, cfg.DataDir); err != nil {
			return nil, err
		}
		if a.Auth.DevSecretPath != "" {
			log.Warn("dev auth: no key configured, tokens are signed with a generated secret; configure auth.secret-file or auth.public-key-files in production",
				zap.String("secret_file", a.Auth.DevSecretPath))
		}
	}
	subj := cfg.NATS.Subjects()
	var started []Role
	for _, t := range targets {
		var r Role
		switch t {
		case RoleGateway:
			hr := &history.Reader{Store: a.Store, JS: a.JS, Subjects: subj, Consumer: persister.ConsumerName}
			a.Gateway, err = gateway.New(cfg.Gateway, gateway.Deps{NC: a.NC, JS: a.JS, Store: a.Store, Subjects: subj,
				LargeChatThreshold: cfg.Sequencer.LargeChatThreshold,
				Auth:               a.Auth, History: hr, Ready: func(ad net.Addr) { a.gwAddr <- ad }, Metrics: a.Metrics}, log)
			a.gwFirst = newFirstToStop(a.Gateway)
			r = a.gwFirst
		case RoleSequencer:
			a.Seq, err = sequencer.New(cfg.Sequencer, sequencer.Deps{NC: a.NC, JS: a.JS, Store: a.Store, Subjects: subj, Metrics: a.Metrics,
				History: &history.Reader{Store: a.Store, JS: a.JS, Subjects: subj, Consumer: persister.ConsumerName}}, log)
			r = a.Seq
		case RolePersister:
			a.Persist, err = persister.New(cfg.Persister, persister.Deps{JS: a.JS, Store: a.Store, Subjects: subj}, log)
			r = a.Persist
		case RolePresence:
			a.Presence, err = presence.New(cfg.Presence, presence.Deps{NC: a.NC, JS: a.JS, Subjects: subj, Replicas: cfg.NATS.Replicas}, log)
			r = a.Presence
		case RoleNotifier:
			a.Notifier, err = notifier.New(cfg.Notifier, notifier.Deps{NC: a.NC, JS: a.JS, Store: a.Store, Subjects: subj, Replicas: cfg.NATS.Replicas}, log)
			r = a.Notifier
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		started = append(started, r)
	}
	rctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	for i, r := range started {
		a.wg.Add(1)
		go func(name string, r Role) {
			defer a.wg.Done()
			if err := r.Run(rctx); err != nil {
				a.errMu.Lock()
				if a.firstErr == nil {
					a.firstErr = fmt.Errorf("%s: %w", name, err)
				}
				a.errMu.Unlock()
				log.Error("role stopped", zap.String("role", name), zap.Error(err))
				cancel()
			}
		}(targets[i], r)
	}
	if a.Gateway != nil {
		select {
		case a.addr = <-a.gwAddr:
		case <-rctx.Done():
			return nil, a.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if a.Admin != nil {
		a.addChecks()
	}
	a.state.Store(stateRunning)
	log.Info("natter started", zap.Strings("roles", targets))
	return a, nil
}

// ensureStreams creates the streams, retrying for a while: on a fresh cluster whose
// nodes start together, JetStream may not place R3 streams yet ("no suitable peers").
func ensureStreams(ctx context.Context, js jetstream.JetStream, c *natsutil.Config, log *zap.Logger) error {
	deadline := time.Now().Add(60 * time.Second)
	backoff := 250 * time.Millisecond
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := natsutil.EnsureStreams(sctx, js, c)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		log.Warn("creating streams failed; retrying (is the NATS cluster forming?)", zap.Error(err))
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// OpenStore opens the configured store backend.
func OpenStore(ctx context.Context, cfg *Config, log *zap.Logger) (store.Store, error) {
	switch cfg.Store.Backend {
	case "sqlite":
		p := cfg.Store.SQLitePath
		if p == "" {
			p = filepath.Join(cfg.DataDir, "natter.db")
		}
		return store.OpenSQLite(ctx, p)
	case "cassandra":
		if cfg.Store.Migrate {
			if err := store.MigrateCassandra(ctx, cfg.Cassandra, log); err != nil {
				return nil, err
			}
		}
		return store.OpenCassandra(ctx, cfg.Cassandra, log)
	}
	return nil, fmt.Errorf("store: unknown backend %q", cfg.Store.Backend)
}

// GatewayAddr is the gateway's listen address (nil without the gateway role).
func (a *App) GatewayAddr() net.Addr { return a.addr }

// Done is closed when the roles have stopped (after Close, or when one failed).
func (a *App) Done() <-chan struct{} {
	ch := make(chan struct{})
	go func() { a.wg.Wait(); close(ch) }()
	return ch
}

// Err returns the first role error, if any.
func (a *App) Err() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.firstErr
}

// Kill stops the process as a crash would, for fault tests: the NATS connection is
// cut first, so nothing more is acked or published, then the roles are stopped.
func (a *App) Kill() {
	if a.NC != nil {
		a.NC.Close()
	}
	a.Close()
}

// Close stops the roles, then the dependencies, in reverse order of start.
func (a *App) Close() error {
	a.closeOnce.Do(func() { a.closeErr = a.close() })
	return a.closeErr
}

func (a *App) close() error {
	a.state.Store(stateStopping)
	a.gwFirst.stop() // drain the gateway while the other roles still run
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	var errs []error
	if a.NC != nil {
		if err := a.NC.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
		a.NC.Close()
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	if a.NATS != nil {
		a.NATS.Shutdown()
		a.NATS.WaitForShutdown()
	}
	errs = append(errs, a.Admin.Close())
	return errors.Join(errs...)
}

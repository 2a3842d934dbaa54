package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
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
	"github.com/natter-chat/natter/pkg/lifecycle"
	"github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/presence"
	"github.com/natter-chat/natter/sequencer"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
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

	NATS *server.Server // embedded server, nil with nats.url
	// Storage tells whether JetStream can store (and recovers the embedded
	// server's store when its disk has room again).
	Storage *natsutil.StorageWatch
	// NATSCredsDir holds the embedded server's generated credentials ("" with
	// nats.url): natter creds prints them for other processes.
	NATSCredsDir string
	embedded     *natsutil.Embedded
	// NC and JS are the process's own connection: with the embedded server it is
	// the admin user's (stream setup, metrics, tests), with nats.url the configured
	// user's. Each role connects on its own, as its NATS user, when the embedded
	// server runs (roleConns); with nats.url the roles share NC.
	NC        *nats.Conn
	JS        jetstream.JetStream
	roleConns []*nats.Conn
	// permErrs counts the NATS server's refusals of this process's operations
	// (permissions violations): each is a bug in a role or its permission set.
	permErrs atomic.Int64
	permMu   sync.Mutex // guards permSeen
	permSeen []string   // distinct violation messages, at most 20
	Store    store.Store
	Auth     *auth.Verifier
	Gateway  *gateway.Gateway
	Seq      *sequencer.Sequencer
	Persist  *persister.Persister
	Presence *presence.Presence
	Notifier *notifier.Notifier
	gwAddr   chan net.Addr
	addr     net.Addr
	cancel   context.CancelFunc // stops the roles (Close)
	group    *errgroup.Group    // the running roles (nil before they start)
	gctx     context.Context    // the roles' context: canceled by Close or the first failure

	// Metrics are the process's metrics; Admin serves them (nil: admin.listen "").
	Metrics *metrics.Metrics
	Admin   *admin.Server
	state   atomic.Int32 // stateStarting, stateRunning, stateStopping (observe.go)
	gwFirst *firstToStop // the gateway, stopped (drained) before the other roles

	stopWatch func()      // stops Storage's watch of the embedded server (nil: none)
	rawStore  store.Store // Store without the metrics wrapper, for its side interfaces

	closeOnce sync.Once
	closeErr  error
}

// Start sets up the dependencies the selected roles need and starts the roles. It
// returns once the gateway (if selected) listens. Stop with Close. On error nothing
// is left running, and the error names the cause (the address, path or setting).
func Start(ctx context.Context, cfg *Config, log *zap.Logger) (*App, error) {
	targets, err := Targets(cfg.Roles)
	if err != nil {
		return nil, err
	}
	// The role goroutines refer to a: it must never be the nil of an error return.
	a := &App{Config: cfg, Log: log, Targets: targets, gwAddr: make(chan net.Addr, 1)}
	if err := a.start(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) start(ctx context.Context) (err error) {
	cfg, log, targets := a.Config, a.Log, a.Targets
	if err = a.startAdmin(); err != nil {
		return err
	}
	a.Storage = natsutil.NewStorageWatch(log)
	if cfg.NATS.URL == "" {
		e, err := natsutil.StartEmbedded(&cfg.NATS, cfg.DataDir, log)
		if err != nil {
			return err
		}
		a.NATS, a.Storage, a.embedded, a.NATSCredsDir = e.Server, e.Storage, e, e.CredsDir
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); a.Storage.Run(wctx) }()
		a.stopWatch = func() { stop(); <-done }
		where := "in-process only"
		if a.NATS.Addr() != nil {
			where = a.NATS.ClientURL()
		}
		log.Info("embedded NATS server started", zap.String("store_dir", filepath.Join(cfg.DataDir, "nats")),
			zap.String("listen", where), zap.String("credentials", a.NATSCredsDir))
	}
	if a.NC, err = natsutil.Connect(&cfg.NATS, a.embedded, "natter "+fmt.Sprint(targets), natsutil.UserAdmin, a.natsError); err != nil {
		return err
	}
	if a.JS, err = jetstream.New(a.NC); err != nil {
		return err
	}
	if err = ensureStreams(ctx, a.JS, &cfg.NATS, a.owned(), log); err != nil {
		return fmt.Errorf("set up streams: %w", err)
	}
	if needs(targets, depStore) {
		st, err := OpenStore(ctx, cfg, log)
		if err != nil {
			return err
		}
		a.rawStore, a.Store = st, metrics.InstrumentStore(st, a.Metrics)
	}
	if needs(targets, depAuth) {
		if a.Auth, err = auth.NewVerifier(cfg.Auth, cfg.DataDir); err != nil {
			return err
		}
		if a.Auth.DevSecretPath != "" {
			log.Warn("dev auth: no key configured, tokens are signed with a generated secret; configure auth.secret-file or auth.public-key-files in production",
				zap.String("secret_file", a.Auth.DevSecretPath))
		}
	}
	var started []Role
	for _, t := range targets {
		nc, js, err := a.roleConn(t)
		if err != nil {
			return err
		}
		r, err := roles[t].build(a, nc, js)
		if err != nil {
			return roleErr(t, err)
		}
		started = append(started, r)
	}
	// The first role to fail stops the others: errgroup cancels gctx with its error
	// as the cause, which Err reports. Close cancels rctx (the cause is then
	// context.Canceled: no role failed).
	rctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(rctx)
	a.cancel, a.group, a.gctx = cancel, g, gctx
	for i, r := range started {
		name := targets[i]
		g.Go(func() error {
			err := r.Run(gctx)
			if err == nil {
				return nil
			}
			// The first failure is what Err, Start and the command report (serve
			// logs it as it stops): not logged here, so it is printed once. One
			// after it, other than the cancellation it caused, is news.
			if gctx.Err() != nil && !errors.Is(err, context.Canceled) {
				log.Warn("role stopped", zap.String("role", name), zap.Error(err))
			}
			return roleErr(name, err)
		})
	}
	if a.Gateway != nil {
		select {
		case a.addr = <-a.gwAddr:
		case <-gctx.Done():
			return a.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if a.Admin != nil {
		a.addChecks()
	}
	a.state.Store(stateRunning)
	// The bound gateway address is logged so that whoever started the process with
	// port 0 (tests, supervisors) can find it without guessing a free port.
	fields := []zap.Field{zap.Strings("roles", targets)}
	if a.addr != nil {
		fields = append(fields, zap.String("gateway", a.addr.String()))
	}
	log.Info("natter started", fields...)
	return nil
}

// roleErr prefixes err with the role's name unless it names the role already.
func roleErr(role string, err error) error {
	if strings.HasPrefix(err.Error(), role+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", role, err)
}

// ensureStreams creates the streams this process owns and waits for the others,
// retrying for a while: on a fresh cluster whose nodes start together, JetStream may
// not place R3 streams yet ("no suitable peers"), and another role's process may
// not have created its streams yet. An answer that no retry can change (a
// configuration the server refuses, JetStream disabled, no permission) fails at
// once. When this process owns NATTER_IN and it kept another storage than
// nats.ingress-storage asks for, it logs one line saying how to switch.
func ensureStreams(ctx context.Context, js jetstream.JetStream, c *natsutil.Config, own natsutil.Owned, log *zap.Logger) error {
	err := retryEnsure(ctx, js, c, own, log)
	if err == nil && own.Core {
		if note := natsutil.IngressStorageNote(ctx, js, c); note != "" {
			log.Warn(note)
		}
	}
	return err
}

// retryEnsure is ensureStreams' retrying creation.
func retryEnsure(ctx context.Context, js jetstream.JetStream, c *natsutil.Config, own natsutil.Owned, log *zap.Logger) error {
	return lifecycle.Retry(ctx, lifecycle.Backoff{Initial: 250 * time.Millisecond, Max: 5 * time.Second, MaxElapsed: 60 * time.Second},
		func() error {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			err := natsutil.EnsureOwned(sctx, js, c, own)
			if err != nil && permanentStreamErr(err) {
				return lifecycle.Permanent(err)
			}
			return err
		}, func(err error, _ int, _ time.Duration) {
			log.Warn("creating streams failed; retrying (is the NATS cluster forming?)", zap.Error(err))
		})
}

// permanentStreamErr reports whether err, from creating the streams, stays the
// same however long the process waits.
func permanentStreamErr(err error) bool {
	if errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, nats.ErrAuthorization) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, natsutil.ErrPartitionsChanged) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10052, // invalid stream configuration (e.g. dedup window longer than max age)
		10058, // stream name in use with a different configuration
		10065, // subjects overlap with another stream
		10074, // replicas > 1 on a server that is not clustered
		10076, // JetStream not enabled
		10039, // JetStream not enabled for the account
		10047, // a MaxBytes above what the server may store (natsutil.ErrCodeStorageReservation)
		10028: // a memory stream's MaxBytes above what the server may keep in memory (natsutil.ErrCodeMemoryReservation)
		return true
	}
	return false
}

// OpenStore opens the configured store backend. On error the Store is nil.
func OpenStore(ctx context.Context, cfg *Config, log *zap.Logger) (store.Store, error) {
	switch cfg.Store.Backend {
	case "sqlite":
		p := cfg.Store.SQLitePath
		if p == "" {
			p = filepath.Join(cfg.DataDir, "natter.db")
		}
		st, err := store.OpenSQLite(ctx, p)
		if err != nil {
			return nil, err // not st: a nil *SQLiteStore is a non-nil Store
		}
		return st, nil
	case "cassandra":
		if cfg.Store.Migrate {
			if err := store.MigrateCassandra(ctx, cfg.Cassandra, log); err != nil {
				return nil, err
			}
		}
		st, err := store.OpenCassandra(ctx, cfg.Cassandra, log)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("store: unknown backend %q", cfg.Store.Backend)
}

// GatewayAddr is the gateway's listen address (nil without the gateway role).
func (a *App) GatewayAddr() net.Addr { return a.addr }

// Done is closed when the roles have stopped (after Close, or when one failed).
func (a *App) Done() <-chan struct{} {
	ch := make(chan struct{})
	go func() { a.waitRoles(); close(ch) }()
	return ch
}

// waitRoles waits for every started role's Run to return.
func (a *App) waitRoles() {
	if a.group != nil {
		a.group.Wait() // its error is also gctx's cause: Err
	}
}

// Err returns the first role error, prefixed with the role's name; nil while the
// roles run, and when Close stopped them without one failing first.
func (a *App) Err() error {
	if a.gctx == nil {
		return nil
	}
	if err := context.Cause(a.gctx); err != context.Canceled { // identity: Close's cancel (a role's error is wrapped)
		return err
	}
	return nil
}

// Sever cuts the process's NATS connection and then closes it, for tests of what
// the rest of the system sees when a process vanishes from NATS (no disconnect
// reports, no acks, no publishes after the cut). It is not a crash: the roles
// still run their shutdown paths locally. Crashes are tested with SIGKILL of real
// processes (pkg/e2e, proc_test.go).
func (a *App) Sever() {
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
	a.waitRoles()
	var errs []error
	for _, nc := range a.roleConns {
		if err := nc.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
		nc.Close()
	}
	if a.NC != nil {
		if err := a.NC.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
		a.NC.Close()
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	a.Auth.Close() // the JWKS refetch
	if a.stopWatch != nil {
		a.stopWatch()
	}
	if a.NATS != nil {
		a.NATS.Shutdown()
		a.NATS.WaitForShutdown()
	}
	errs = append(errs, a.Admin.Close())
	return errors.Join(errs...)
}

// roleConn returns the connection role runs on: with the embedded server, a new one
// as the role's NATS user (least privilege in the all-in-one too); with nats.url,
// the process's.
func (a *App) roleConn(role string) (*nats.Conn, jetstream.JetStream, error) {
	if a.embedded == nil {
		return a.NC, a.JS, nil
	}
	nc, err := natsutil.Connect(&a.Config.NATS, a.embedded, "natter "+role, role, a.natsError)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", role, err)
	}
	a.roleConns = append(a.roleConns, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", role, err)
	}
	return nc, js, nil
}

// owned is what this process creates at start: everything with the embedded server
// or an all-rights user; with a role's NATS user (deploy/nats/accounts.conf), the
// streams and buckets of its roles only, waiting for the others'.
func (a *App) owned() natsutil.Owned {
	u := a.Config.NATS.User
	if a.embedded != nil || u == "" || !slices.Contains(natsutil.Users, u) || u == natsutil.UserAdmin {
		return natsutil.Owned{Core: true, Media: true}
	}
	return natsutil.Owned{Core: slices.Contains(a.Targets, RoleSequencer), Media: slices.Contains(a.Targets, RoleGateway)}
}

// natsError hears the NATS server's asynchronous errors on the process's
// connections. A permissions violation means a role tried what its NATS user may
// not: logged as an error and counted (PermissionViolations).
func (a *App) natsError(err error) {
	if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
		a.permErrs.Add(1)
		a.permMu.Lock()
		if msg := err.Error(); len(a.permSeen) < 20 && !slices.Contains(a.permSeen, msg) {
			a.permSeen = append(a.permSeen, msg)
		}
		a.permMu.Unlock()
		a.Log.Error("NATS refused an operation: permissions violation (a role's permission set misses it; see docs/security.md)", zap.Error(err))
		return
	}
	a.Log.Warn("NATS error", zap.Error(err))
}

// PermissionViolations is how many operations the NATS server refused this process
// for lack of permission since it started.
// Up to 20 distinct messages of them come with the count.
func (a *App) PermissionViolations() (int64, []string) {
	a.permMu.Lock()
	defer a.permMu.Unlock()
	return a.permErrs.Load(), slices.Clone(a.permSeen)
}

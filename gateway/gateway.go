package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/gateway/erasure"
	"github.com/natter-chat/natter/gateway/keys"
	"github.com/natter-chat/natter/gateway/largechat"
	"github.com/natter-chat/natter/gateway/livestate"
	"github.com/natter-chat/natter/gateway/media"
	"github.com/natter-chat/natter/gateway/memberstate"
	"github.com/natter-chat/natter/gateway/people"
	"github.com/natter-chat/natter/gateway/retention"
	"github.com/natter-chat/natter/gateway/search"
	"github.com/natter-chat/natter/gateway/transport"
	"github.com/natter-chat/natter/pkg/answer"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/history"
	pmetrics "github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Deps are what the gateway needs from the process.
type Deps struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Store    store.Store
	Subjects subjects.Subjects
	Auth     *auth.Verifier
	History  *history.Reader
	// LargeChatThreshold is the member count above which chats are delivered
	// through their log subject (the sequencer's setting).
	LargeChatThreshold int
	// Ready, when set, is called once the listener is bound with its address.
	Ready func(addr net.Addr)
	// Metrics receives the gateway's metrics; nil: none.
	Metrics *pmetrics.Metrics
	// Storage tells whether JetStream can store now, so sends fail at once when
	// it cannot (nil: sends find out by their timeout).
	Storage StorageState
}

// StorageState is whether JetStream can store messages now (a
// natsutil.StorageWatch).
type StorageState interface {
	// Err is nil while JetStream can store, else why not.
	Err() error
	// Tripped is closed when storing starts to fail.
	Tripped() <-chan struct{}
	// Report tells the state a publish's outcome.
	Report(err error)
}

// Gateway is the gateway role.
type Gateway struct {
	cfg     Config
	deps    Deps
	log     *zap.Logger
	hub     *transport.Hub
	members *memberCache
	// flags: which chats are end-to-end encrypted (encrypted.go).
	flags   *chatFlags
	large   *largechat.Chats // gateway/largechat
	deny    *denyList        // denylist.go
	metrics metrics
	// out: what every connection's sending needs (gateway/transport).
	out *transport.Out
	// conns: the WebSocket and SSE endpoints (gateway/transport, wired in transport.go).
	conns *transport.Server
	mux   *http.ServeMux
	// draining is set when Run's context ends: see drain.go.
	draining atomic.Bool

	// presence and typing: gateway/livestate, wired in livestate.go.
	presence *livestate.Presence
	typing   *livestate.Typing
	// media: uploads, downloads and shares (gateway/media).
	media *media.Service
	// keys: the key directory of encrypted chats (gateway/keys).
	keys *keys.Service
	// search: full-text search (gateway/search).
	search *search.Service
	// people: profiles, push devices and blocks (gateway/people).
	people *people.Service
	// chats: the reads of chats, members and history over REST (gateway/chats).
	chats *chats.Service
	// memberState: receipts listings and mutes (gateway/memberstate).
	memberState *memberstate.Service
	// erasure: the admin API that erases an account (gateway/erasure).
	erasure *erasure.Service
	// retention: message TTLs, clearing and deleting chats (gateway/retention).
	retention *retention.Service
	// blocks: block lists, briefly cached (blocks.go).
	blocks *store.BlockCache
	// limits: abuse limits (limits.go); rest: the REST buckets (restlimits.go).
	limits *limiter
	rest   *restLimiter
	// ingress: the group-committing queue of sends to NATTER_IN (ingress.go).
	ingress ingressQueue
	// answers: the sequencer's answers to this gateway's sends (answers.go).
	answers *answer.Waiter
	// sysEvents: system events parsed once per event for the membership watches (sysevents.go).
	sysEvents sysEvents
}

// metrics are the gateway's counters.
type metrics struct {
	slowConsumers atomic.Int64
	ipRefused     atomic.Int64 // connections closed over gateway.limits.conns-per-ip
	restLimited   atomic.Int64 // REST requests refused by the REST buckets (restlimits.go)
}

// New returns a gateway.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Gateway, error) {
	log := logger.With(zap.String("role", "gateway"))
	g := &Gateway{cfg: cfg, deps: deps, log: log,
		hub:     transport.NewHub(deps.NC, deps.Subjects.UserPrefix(), max(2, runtime.GOMAXPROCS(0)), log),
		members: newMemberCache(deps.Store, 100_000, 5*time.Second),
		blocks:  store.NewBlockCache(deps.Store, blockCacheTTL),
		flags:   newChatFlags(deps.Store, 100_000, 10*time.Minute),
	}
	g.out = transport.NewOut(cfg.SendQueue, cfg.SendQueueBytes, cfg.WriteTimeout, &g.metrics.slowConsumers, deps.Metrics)
	g.ingress = ingressQueue{js: deps.JS, metrics: deps.Metrics, log: log}
	g.answers = answer.New(deps.NC, deps.Subjects.AnswerGatewayPrefix(), cfg.PublishTimeout, log)
	g.large = largechat.New(largechat.Deps{Hub: g.hub, Members: g.members, NC: deps.NC, KV: deps.JS, Subjects: deps.Subjects, Events: &g.sysEvents}, log)
	g.deny = newDenyList(g.hub, deps.JS, deps.Auth, log)
	// The member cache trusts a connected user's answers until an event of theirs
	// invalidates them (members.go): watched from before large chats ask it.
	g.hub.OnFirst = func(uid string) { g.members.watch(uid); g.large.UserConnected(uid) }
	g.hub.OnLast = func(uid string) { g.large.UserGone(uid); g.members.unwatch(uid) }
	g.hub.OnOther, g.hub.OnUser = g.large.Deliver, g.userDelivery // chats.go
	g.presence, g.typing = g.newLiveState()                       // livestate.go
	g.limits = newLimiter(cfg.Limits)
	g.rest = newRESTLimiter(cfg.Limits.REST)
	g.conns = g.newConnServer() // transport.go: after the limits, deny list and presence it uses
	g.newConcepts()             // ports.go: the REST concept packages
	g.mux = g.newMux()          // routes.go
	if err := g.observe(); err != nil {
		return nil, err
	}
	return g, nil
}

// Handler returns the gateway's HTTP handler (for tests and embedding): the routes
// behind the edge guard (edge.go).
func (g *Gateway) Handler() http.Handler { return g.edgeGuard(g.mux) }

// Run serves until ctx ends, then drains (drain.go): it refuses new connections,
// hints every connection to reconnect, spread over Config.DrainWindow, and closes
// them; it returns when they are closed.
func (g *Gateway) Run(ctx context.Context) error {
	// Connections outlive ctx by the drain: they, and the large-chat watch that
	// feeds them, end when connCtx does.
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConns()
	var lwg sync.WaitGroup
	defer lwg.Wait()
	wctx, wcancel := context.WithCancel(connCtx)
	defer wcancel()
	if err := g.large.Watch(wctx, &lwg); err != nil {
		return fmt.Errorf("gateway: watch large chats: %w", err)
	}
	if err := g.deny.watch(wctx, &lwg); err != nil {
		return fmt.Errorf("gateway: watch the deny list: %w", err)
	}
	g.ingress.learnStorage(ctx) // ingress.go
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w (is it in use? set gateway.listen)", g.cfg.Listen, err)
	}
	ln = transport.NewIPCapListener(ln, g.cfg.Limits.ConnsPerIP, &g.metrics.ipRefused)
	if g.deps.Ready != nil {
		g.deps.Ready(ln.Addr())
	}
	// No ReadTimeout or WriteTimeout: they would end WebSockets and SSE streams.
	// Bodies get their deadline per route (edge.go).
	srv := &http.Server{Handler: g.refuseWhileDraining(g.Handler()),
		ReadHeaderTimeout: g.cfg.HeaderTimeout, IdleTimeout: g.cfg.IdleTimeout, MaxHeaderBytes: g.cfg.MaxHeaderBytes,
		BaseContext: func(net.Listener) context.Context { return connCtx }}
	var wg sync.WaitGroup
	g.hub.Run(&wg)
	g.presence.Run(connCtx, &wg)
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.hub.Heartbeats(connCtx, g.cfg.PingInterval, g.cfg.PongTimeout, g.checkExpiry) // refresh.go: warns, or closes 30 s after expiry
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.media.SweepUnshared(connCtx)
	}()
	errc := make(chan error, 1)
	go func() {
		if g.cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, g.cfg.TLSCert, g.cfg.TLSKey)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gateway: serve: %w", err)
		}
	}
	g.drain()
	g.hub.Each(func(c *conn) { c.CloseWith(1001, "shutting_down", "server stopping") })
	g.awaitClosed(5 * time.Second)
	stopConns()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	g.hub.Stop()
	wg.Wait()
	g.answers.Close()
	return nil
}

// SlowConsumers returns how many connections were closed for a full send queue.
func (g *Gateway) SlowConsumers() int64 { return g.metrics.slowConsumers.Load() }

// Connections returns the number of connected devices and users.
func (g *Gateway) Connections() (conns, users int) { return g.hub.Count() }

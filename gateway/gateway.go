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
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/history"
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
	// Ready, when set, is called once the listener is bound with its address.
	Ready func(addr net.Addr)
}

// Gateway is the gateway role.
type Gateway struct {
	cfg     Config
	deps    Deps
	log     *zap.Logger
	hub     *hub
	members *memberCache
	metrics metrics
	nextID  atomic.Uint64
	mux     *http.ServeMux
}

// metrics are the gateway's counters.
type metrics struct {
	slowConsumers atomic.Int64
}

// New returns a gateway.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Gateway, error) {
	log := logger.With(zap.String("role", "gateway"))
	g := &Gateway{cfg: cfg, deps: deps, log: log,
		hub:     newHub(deps.NC, deps.Subjects.UserPrefix(), max(2, runtime.GOMAXPROCS(0)), log),
		members: newMemberCache(deps.Store, 100_000, 5*time.Second),
	}
	g.mux = http.NewServeMux()
	g.routes()
	return g, nil
}

// Handler returns the gateway's HTTP handler (for tests and embedding).
func (g *Gateway) Handler() http.Handler { return g.mux }

// Run serves until ctx ends, then closes every connection.
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w (is it in use? set gateway.listen)", g.cfg.Listen, err)
	}
	if g.deps.Ready != nil {
		g.deps.Ready(ln.Addr())
	}
	srv := &http.Server{Handler: g.mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	var wg sync.WaitGroup
	g.hub.run(&wg)
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.heartbeats(ctx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gateway: serve: %w", err)
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.hub.each(func(c *conn) { c.closeWith(1001, "shutting_down", "server stopping") })
	_ = srv.Shutdown(shutCtx)
	g.hub.stop()
	wg.Wait()
	return nil
}

// heartbeats pings connections that have been quiet for PingInterval and closes
// those that do not answer, or whose token has expired. One goroutine for all
// connections; a ping runs in a short-lived goroutine.
func (g *Gateway) heartbeats(ctx context.Context) {
	tick := time.NewTicker(max(g.cfg.PingInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			g.hub.each(func(c *conn) {
				if !c.expires.IsZero() && now.After(c.expires.Add(30*time.Second)) {
					go c.closeWith(4002, "token_expired", "token expired: refresh it and reconnect")
					return
				}
				if now.UnixNano()-c.lastRead.Load() < int64(g.cfg.PingInterval) || !c.pinging.CompareAndSwap(false, true) {
					return
				}
				go func() {
					defer c.pinging.Store(false)
					pctx, cancel := context.WithTimeout(ctx, g.cfg.PongTimeout)
					defer cancel()
					if err := c.ws.Ping(pctx); err != nil {
						c.closeWith(1008, "timeout", "no pong")
						return
					}
					c.lastRead.Store(time.Now().UnixNano())
				}()
			})
		}
	}
}

// Connections returns the number of connected devices and users.
func (g *Gateway) Connections() (conns, users int) { return g.hub.count() }

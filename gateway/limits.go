package gateway

import (
	"errors"
	"flag"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/protocol"
	"golang.org/x/time/rate"
)

// LimitsConfig is the abuse-limit part of the gateway section (flags gateway.limits.*).
// For every limit, 0 means unlimited.
type LimitsConfig struct {
	// ConnMsgRate and ConnMsgBurst are the token bucket for write frames (send, edit,
	// delete, react, typing) on one connection, in frames per second.
	ConnMsgRate  float64 `yaml:"conn_msg_rate"`
	ConnMsgBurst int     `yaml:"conn_msg_burst"`
	// UserMsgRate and UserMsgBurst are the bucket shared by all of one user's
	// connections on this gateway.
	UserMsgRate  float64 `yaml:"user_msg_rate"`
	UserMsgBurst int     `yaml:"user_msg_burst"`
	// ConnReadRate and ConnReadBurst are the token bucket for every other frame
	// (history, sync, delivered, read, presence_sub, connect, ping, and unknown types)
	// on one connection, in frames per second: the frames that make the gateway read
	// and answer rather than write.
	ConnReadRate  float64 `yaml:"conn_read_rate"`
	ConnReadBurst int     `yaml:"conn_read_burst"`
	// UserReadRate and UserReadBurst are the read-frame bucket shared by all of one
	// user's connections on this gateway.
	UserReadRate  float64 `yaml:"user_read_rate"`
	UserReadBurst int     `yaml:"user_read_burst"`
	// ConnsPerUser caps one user's open connections on this gateway, WebSocket and
	// SSE together; ConnsPerGateway caps all of them.
	ConnsPerUser    int `yaml:"conns_per_user"`
	ConnsPerGateway int `yaml:"conns_per_gateway"`
	// ConnectRate and ConnectBurst are the bucket for connection attempts (WebSocket
	// upgrades and SSE event streams) per remote IP (the TCP peer address: behind a
	// proxy, that is the proxy).
	ConnectRate  float64 `yaml:"connect_rate"`
	ConnectBurst int     `yaml:"connect_burst"`
	// ConnsPerIP caps the TCP connections one remote IP holds open at once, of any
	// kind (gateway/transport/listener.go); more are closed on accept.
	ConnsPerIP int `yaml:"conns_per_ip"`
	// REST: the per-user buckets of chat creation, member adds and REST message
	// posts (restlimits.go).
	REST RESTLimits `yaml:",inline"`
	// UploadRate and UploadBurst are the bucket for one user's media uploads
	// (POST /api/v1/media) on this gateway, in uploads per second.
	UploadRate  float64 `yaml:"upload_rate"`
	UploadBurst int     `yaml:"upload_burst"`
}

// RegisterFlags registers the gateway.limits.* flags.
func (c *LimitsConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.ConnMsgRate, "gateway.limits.conn-msg-rate", 20, "write frames (send/edit/delete/react/typing) per second per connection (0: unlimited)")
	fs.IntVar(&c.ConnMsgBurst, "gateway.limits.conn-msg-burst", 50, "burst of write frames per connection")
	fs.Float64Var(&c.UserMsgRate, "gateway.limits.user-msg-rate", 40, "write frames per second per user, over all its connections on this gateway (0: unlimited)")
	fs.IntVar(&c.UserMsgBurst, "gateway.limits.user-msg-burst", 100, "burst of write frames per user")
	fs.Float64Var(&c.ConnReadRate, "gateway.limits.conn-read-rate", 20, "read frames (history/sync/delivered/read/presence_sub/connect/ping) per second per connection (0: unlimited)")
	fs.IntVar(&c.ConnReadBurst, "gateway.limits.conn-read-burst", 100, "burst of read frames per connection")
	fs.Float64Var(&c.UserReadRate, "gateway.limits.user-read-rate", 40, "read frames per second per user, over all its connections on this gateway (0: unlimited)")
	fs.IntVar(&c.UserReadBurst, "gateway.limits.user-read-burst", 200, "burst of read frames per user")
	fs.IntVar(&c.ConnsPerUser, "gateway.limits.conns-per-user", 32, "open connections (WebSocket and SSE) per user on this gateway (0: unlimited)")
	fs.IntVar(&c.ConnsPerGateway, "gateway.limits.conns-per-gateway", 200000, "open connections (WebSocket and SSE) on this gateway (0: unlimited)")
	fs.Float64Var(&c.ConnectRate, "gateway.limits.connect-rate", 10, "connection attempts (WebSocket and SSE) per second per remote IP (0: unlimited)")
	fs.IntVar(&c.ConnectBurst, "gateway.limits.connect-burst", 100, "burst of connection attempts per remote IP")
	fs.IntVar(&c.ConnsPerIP, "gateway.limits.conns-per-ip", 1024, "open TCP connections per remote IP, of any kind (0: unlimited; behind a proxy, cap at the proxy)")
	c.REST.RegisterFlags(fs)
	fs.Float64Var(&c.UploadRate, "gateway.limits.upload-rate", 0.5, "media uploads per second per user on this gateway (0: unlimited)")
	fs.IntVar(&c.UploadBurst, "gateway.limits.upload-burst", 20, "burst of media uploads per user")
}

// Validate checks the section.
func (c *LimitsConfig) Validate() error {
	var errs []error
	if c.ConnMsgRate < 0 || c.UserMsgRate < 0 || c.ConnReadRate < 0 || c.UserReadRate < 0 || c.ConnectRate < 0 || c.UploadRate < 0 {
		errs = append(errs, errors.New("gateway: gateway.limits.*-rate must be >= 0"))
	}
	if (c.ConnMsgRate > 0 && c.ConnMsgBurst < 1) || (c.UserMsgRate > 0 && c.UserMsgBurst < 1) ||
		(c.ConnReadRate > 0 && c.ConnReadBurst < 1) || (c.UserReadRate > 0 && c.UserReadBurst < 1) || (c.ConnectRate > 0 && c.ConnectBurst < 1) || (c.UploadRate > 0 && c.UploadBurst < 1) {
		errs = append(errs, errors.New("gateway: gateway.limits.*-burst must be >= 1 when its rate is set"))
	}
	if c.ConnsPerUser < 0 || c.ConnsPerGateway < 0 || c.ConnsPerIP < 0 {
		errs = append(errs, errors.New("gateway: gateway.limits.conns-per-* must be >= 0"))
	}
	errs = append(errs, c.REST.Validate())
	return errors.Join(errs...)
}

// Disable turns every limit off (all zero: unlimited). Test harnesses that measure
// other behaviour use it; tests of the limits set the ones they test.
func (c *LimitsConfig) Disable() { *c = LimitsConfig{} }

// limiter enforces LimitsConfig. It has no goroutine: per-user state is created on a
// user's first connection and dropped with its last; per-IP state is swept lazily
// once the table grows.
type limiter struct {
	cfg LimitsConfig

	mu    sync.Mutex
	users map[string]*userLimit // users with an open connection
	conns int                   // open connections counted against ConnsPerGateway
	ips   map[string]*rate.Limiter
	sweep int // len(ips) at which the next sweep runs
}

// userLimit is one user's shared state.
type userLimit struct {
	conns int
	msgs  *rate.Limiter // write frames; nil: unlimited
	reads *rate.Limiter // read frames; nil: unlimited
}

// connLimit is one connection's handle: its own buckets and its user's.
type connLimit struct {
	conn  *rate.Limiter // write frames; nil: unlimited
	reads *rate.Limiter // read frames; nil: unlimited
	user  *userLimit
}

func newLimiter(cfg LimitsConfig) *limiter {
	return &limiter{cfg: cfg, users: map[string]*userLimit{}, ips: map[string]*rate.Limiter{}, sweep: 1024}
}

func bucket(r float64, burst int) *rate.Limiter {
	if r <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r), burst)
}

// rateLimited is the error every refusal carries (httpx.RateLimited).
var rateLimited = httpx.RateLimited

// allowConnect reports whether a connection attempt (a WebSocket upgrade or an SSE
// event stream) from the request's remote IP is within gateway.limits.connect-rate.
// Refused attempts take no token.
func (l *limiter) allowConnect(r *http.Request) error {
	if l.cfg.ConnectRate <= 0 {
		return nil
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ips[ip]
	if b == nil {
		if len(l.ips) >= l.sweep {
			l.sweepIPs()
		}
		b = bucket(l.cfg.ConnectRate, l.cfg.ConnectBurst)
		l.ips[ip] = b
	}
	if !b.Allow() {
		return rateLimited("too many connection attempts from this address: back off")
	}
	return nil
}

// sweepIPs drops buckets that have refilled (they equal a fresh one). l.mu is held.
// The next sweep waits until the table has doubled, so the cost is amortised.
func (l *limiter) sweepIPs() {
	now := time.Now()
	for ip, b := range l.ips {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.ips, ip)
		}
	}
	l.sweep = max(1024, 2*len(l.ips))
}

// gatewayFull reports, without reserving, whether the gateway is at its connection
// cap; the WebSocket endpoint asks before upgrading a connection that
// authenticates later.
func (l *limiter) gatewayFull() bool {
	if l.cfg.ConnsPerGateway <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns >= l.cfg.ConnsPerGateway
}

// acquire reserves a connection slot for user, creating the user's shared state on
// its first connection. Every successful acquire must be paired with release.
func (l *limiter) acquire(user string) (*connLimit, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.ConnsPerGateway > 0 && l.conns >= l.cfg.ConnsPerGateway {
		return nil, rateLimited("this gateway is at its connection limit: retry later")
	}
	u := l.users[user]
	if u != nil && l.cfg.ConnsPerUser > 0 && u.conns >= l.cfg.ConnsPerUser {
		return nil, rateLimited("too many connections for this user (limit %d)", l.cfg.ConnsPerUser)
	}
	if u == nil {
		u = &userLimit{msgs: bucket(l.cfg.UserMsgRate, l.cfg.UserMsgBurst), reads: bucket(l.cfg.UserReadRate, l.cfg.UserReadBurst)}
		l.users[user] = u
	}
	u.conns++
	l.conns++
	return &connLimit{conn: bucket(l.cfg.ConnMsgRate, l.cfg.ConnMsgBurst),
		reads: bucket(l.cfg.ConnReadRate, l.cfg.ConnReadBurst), user: u}, nil
}

// release frees the slot acquire reserved; the user's state goes with its last
// connection.
func (l *limiter) release(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns--
	if u := l.users[user]; u != nil {
		if u.conns--; u.conns <= 0 {
			delete(l.users, user)
		}
	}
}

// writeFrame reports whether a frame type counts against the write-frame rate;
// every other type counts against the read-frame rate.
func writeFrame(typ string) bool {
	switch typ {
	case protocol.FrameSend, protocol.FrameEdit, protocol.FrameDelete, protocol.FrameReact, protocol.FrameTyping:
		return true
	}
	return false
}

// allowFrame charges one frame of type typ to the connection's and its user's
// buckets for its kind (writeFrame): every frame counts against one of them. Over
// either, it returns a rate_limited error and charges neither; the connection stays
// open. cl nil (a connection without limits): always allowed.
func (cl *connLimit) AllowFrame(typ string) error {
	if cl == nil {
		return nil
	}
	connB, userB := cl.reads, cl.user.reads
	if writeFrame(typ) {
		connB, userB = cl.conn, cl.user.msgs
	}
	now := time.Now()
	var rc *rate.Reservation
	if connB != nil {
		if rc = connB.ReserveN(now, 1); rc.DelayFrom(now) > 0 {
			rc.CancelAt(now)
			return rateLimited("too many frames on this connection: slow down")
		}
	}
	if userB != nil && !userB.AllowN(now, 1) {
		if rc != nil {
			rc.CancelAt(now)
		}
		return rateLimited("too many frames from this user: slow down")
	}
	return nil
}

// allowFrame charges one frame of type typ to c's limits (connLimit.AllowFrame); a
// connection without limits is always allowed.
func allowFrame(c *conn, typ string) error {
	if c.Lim == nil {
		return nil
	}
	return c.Lim.AllowFrame(typ)
}

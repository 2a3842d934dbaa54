// Package gateway is the edge role: WebSocket connections and the REST API. It
// authenticates clients, validates every frame, publishes sends to NATTER_IN, and
// delivers what arrives on its users' subjects to their connected devices.
package gateway

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/natter-chat/natter/gateway/livestate"
	"github.com/natter-chat/natter/gateway/media"
	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/store"
)

// Config is the gateway section.
type Config struct {
	// Listen is the HTTP address for /ws, the REST API and the web chat.
	Listen string `yaml:"listen"`
	// AllowedOrigins are host patterns (path.Match syntax, e.g. "chat.example.com",
	// "*.example.com") allowed to open WebSockets cross-origin. Same-origin is always
	// allowed. Empty: same-origin only.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// CORSOrigins are host patterns (same syntax) whose pages may call the REST API
	// from a browser (cors.go). Empty: none.
	CORSOrigins []string `yaml:"cors_origins"`
	// MaxFrameBytes is the largest client frame; a larger one closes the connection
	// with 1009 (message too big).
	MaxFrameBytes int64 `yaml:"max_frame_bytes"`
	// MaxBodyBytes is the largest REST request body (media has its own limit).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// SendQueue is how many frames may wait for a slow connection before it is closed
	// with slow_consumer.
	SendQueue int `yaml:"send_queue"`
	// SendQueueBytes bounds the same queue in bytes: a frame that would take it past
	// this closes the connection with slow_consumer, as SendQueue does. Long answers
	// (sync, history) wait while the queue is half full instead. 0: no byte bound.
	SendQueueBytes int `yaml:"send_queue_bytes"`
	// HistoryPageBytes caps a history page (the history frame and GET
	// /api/v1/chats/{id}/messages) at about this many bytes of messages: a page that
	// would be larger is cut short, with hasMore true (at least one message is always
	// sent). 0: pages are capped only by their limit.
	HistoryPageBytes int `yaml:"history_page_bytes"`
	// PingInterval is how often an idle connection is pinged; PongTimeout how long
	// the answer may take before the connection is closed.
	PingInterval time.Duration `yaml:"ping_interval"`
	PongTimeout  time.Duration `yaml:"pong_timeout"`
	// AuthTimeout is how long a connection without a token may take to send connect.
	AuthTimeout time.Duration `yaml:"auth_timeout"`
	// WriteTimeout bounds one frame write to a client.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PublishTimeout bounds the wait for JetStream to store a send in NATTER_IN,
	// and then, once it is stored, the wait for the sequencer's answer (the ack with
	// the seq, or the refusal): each wait ends with unavailable ("resend it with
	// the same messageId") when it runs out.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// MaxGroupMembers is the most members a group may have: a creation or an add
	// that would pass it is refused with group_full (members.go).
	MaxGroupMembers int `yaml:"max_group_members"`
	// ReceiptsMaxMembers: in chats with more members, a receipt goes only to the
	// reader's devices and the senders of the messages it covers, not to everyone.
	ReceiptsMaxMembers int `yaml:"receipts_max_members"`
	// WebChat serves the embedded web chat at /.
	WebChat bool `yaml:"web_chat"`
	// TLSCert and TLSKey are PEM files; with both set the gateway serves HTTPS and
	// WSS only. Empty: plain HTTP (put a TLS-terminating proxy in front).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Presence and Typing: gateway.presence-* and gateway.typing-* (gateway/livestate).
	Presence livestate.PresenceConfig `yaml:",inline"`
	Typing   livestate.TypingConfig   `yaml:",inline"`
	// Media: gateway.media-* (gateway/media).
	Media media.Config `yaml:",inline"`
	// Consent: gateway.consent-* (consent.go).
	Consent ConsentConfig `yaml:",inline"`
	// BodyTimeout is how long a request body (other than an upload) may take to
	// arrive; UploadTimeout the same for POST /api/v1/media. A body not in by then
	// gets 400 and the connection is closed.
	BodyTimeout   time.Duration `yaml:"body_timeout"`
	UploadTimeout time.Duration `yaml:"upload_timeout"`
	// HeaderTimeout bounds the reading of a request's headers; IdleTimeout how
	// long a keep-alive connection may wait for its next request.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes caps a request's line and headers (a token in the URL or the
	// Authorization header included); more gets 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// DrainWindow is how long a stopping gateway spreads its connections'
	// reconnect hints and closes over (see drain.go). 0 closes them all at once.
	DrainWindow time.Duration `yaml:"drain_window"`
	// Limits: gateway.limits.* (limits.go).
	Limits LimitsConfig `yaml:"limits"`
}

// RegisterFlags registers the gateway.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "gateway.listen", "127.0.0.1:8080", "HTTP listen address (WebSocket /ws, REST /api/v1, web chat /)")
	config.ListVar(fs, &c.AllowedOrigins, "gateway.allowed-origins", nil, "cross-origin host patterns allowed to open WebSockets (same-origin always is)")
	config.ListVar(fs, &c.CORSOrigins, "gateway.cors-origins", nil, "host patterns whose pages may call the REST API cross-origin (default none)")
	fs.Int64Var(&c.MaxFrameBytes, "gateway.max-frame-bytes", 64<<10, "largest client frame in bytes")
	fs.Int64Var(&c.MaxBodyBytes, "gateway.max-body-bytes", 64<<10, "largest REST request body in bytes")
	fs.IntVar(&c.SendQueue, "gateway.send-queue", 512, "frames queued per connection before it is closed as a slow consumer")
	fs.IntVar(&c.SendQueueBytes, "gateway.send-queue-bytes", 4<<20, "bytes queued per connection before it is closed as a slow consumer (0: no byte bound)")
	fs.IntVar(&c.HistoryPageBytes, "gateway.history-page-bytes", 1<<20, "largest history page in bytes of messages; a longer page is cut short with hasMore (0: no byte cap)")
	fs.DurationVar(&c.PingInterval, "gateway.ping-interval", 25*time.Second, "ping idle connections this often")
	fs.DurationVar(&c.PongTimeout, "gateway.pong-timeout", 10*time.Second, "close a connection whose pong takes longer")
	fs.DurationVar(&c.AuthTimeout, "gateway.auth-timeout", 10*time.Second, "time a connection has to send its connect frame")
	fs.DurationVar(&c.WriteTimeout, "gateway.write-timeout", 10*time.Second, "longest write of one frame")
	fs.DurationVar(&c.PublishTimeout, "gateway.publish-timeout", 5*time.Second, "longest wait for JetStream to store a send, and then for the sequencer to answer it (the ack)")
	fs.BoolVar(&c.WebChat, "gateway.web-chat", true, "serve the web chat at /")
	fs.StringVar(&c.TLSCert, "gateway.tls-cert", "", "PEM certificate file: serve HTTPS/WSS (with gateway.tls-key)")
	fs.StringVar(&c.TLSKey, "gateway.tls-key", "", "PEM private key file for gateway.tls-cert")
	fs.IntVar(&c.MaxGroupMembers, "gateway.max-group-members", 100_000, "most members of a group; creations and adds past it get group_full")
	fs.IntVar(&c.ReceiptsMaxMembers, "gateway.receipts-max-members", 100, "above this many members, receipts go only to the senders of the messages read")
	c.Presence.RegisterFlags(fs)
	c.Typing.RegisterFlags(fs)
	c.Media.RegisterFlags(fs)
	c.Consent.RegisterFlags(fs)
	c.Limits.RegisterFlags(fs)
	fs.DurationVar(&c.BodyTimeout, "gateway.body-timeout", 10*time.Second, "longest time a REST request body may take to arrive")
	fs.DurationVar(&c.UploadTimeout, "gateway.upload-timeout", 5*time.Minute, "longest time a media upload body may take to arrive")
	fs.DurationVar(&c.HeaderTimeout, "gateway.header-timeout", 10*time.Second, "longest time a request's headers may take to arrive")
	fs.DurationVar(&c.IdleTimeout, "gateway.idle-timeout", 2*time.Minute, "close keep-alive HTTP connections idle this long")
	fs.IntVar(&c.MaxHeaderBytes, "gateway.max-header-bytes", 32<<10, "largest request line plus headers in bytes")
	fs.DurationVar(&c.DrainWindow, "gateway.drain-window", 10*time.Second, "on shutdown, spread reconnect hints and closes over this long (0: close at once)")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("gateway: gateway.listen %q: %w", c.Listen, err))
	}
	if c.MaxFrameBytes < 1024 || c.MaxFrameBytes > 16<<20 {
		errs = append(errs, errors.New("gateway: gateway.max-frame-bytes must be 1KiB..16MiB"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("gateway: gateway.max-body-bytes must be >= 1KiB"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("gateway: set both gateway.tls-cert and gateway.tls-key, or neither"))
	} else if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			errs = append(errs, fmt.Errorf("gateway: gateway.tls-cert/tls-key: %w", err))
		}
	}
	if c.MaxGroupMembers < 2 || c.MaxGroupMembers > 1_000_000 {
		errs = append(errs, errors.New("gateway: gateway.max-group-members must be 2..1000000"))
	}
	if c.ReceiptsMaxMembers < 2 || c.ReceiptsMaxMembers >= store.MaxMemberPage {
		// One more than the limit is read in one page (onReceipt).
		errs = append(errs, fmt.Errorf("gateway: gateway.receipts-max-members must be 2..%d", store.MaxMemberPage-1))
	}
	if c.SendQueue < 8 {
		errs = append(errs, errors.New("gateway: gateway.send-queue must be >= 8"))
	}
	if c.SendQueueBytes < 0 || c.HistoryPageBytes < 0 {
		errs = append(errs, errors.New("gateway: gateway.send-queue-bytes and gateway.history-page-bytes must be >= 0"))
	}
	if c.SendQueueBytes > 0 && (c.HistoryPageBytes == 0 || c.SendQueueBytes < 2*c.HistoryPageBytes || c.SendQueueBytes < 256<<10) {
		// A history page is queued once the queue is under half full (transport.Conn.SendPaced): a
		// page over the other half would close its connection as a slow consumer.
		errs = append(errs, errors.New("gateway: gateway.send-queue-bytes must be >= 256KiB and >= 2 × gateway.history-page-bytes (which must then be set)"))
	}
	if c.HistoryPageBytes != 0 && c.HistoryPageBytes < 64<<10 {
		errs = append(errs, errors.New("gateway: gateway.history-page-bytes must be 0 or >= 64KiB"))
	}
	for name, d := range map[string]time.Duration{"ping-interval": c.PingInterval, "pong-timeout": c.PongTimeout,
		"auth-timeout": c.AuthTimeout, "write-timeout": c.WriteTimeout, "publish-timeout": c.PublishTimeout,
		"body-timeout": c.BodyTimeout, "upload-timeout": c.UploadTimeout, "header-timeout": c.HeaderTimeout, "idle-timeout": c.IdleTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("gateway: gateway.%s must be > 0", name))
		}
	}
	if c.MaxHeaderBytes < 12<<10 || c.MaxHeaderBytes > 1<<20 {
		// A token may be 8 KiB (auth.MaxTokenBytes) and still have to fit.
		errs = append(errs, errors.New("gateway: gateway.max-header-bytes must be 12KiB..1MiB"))
	}
	if c.DrainWindow < 0 || c.DrainWindow > 10*time.Minute {
		errs = append(errs, errors.New("gateway: gateway.drain-window must be 0..10m"))
	}
	errs = append(errs, c.Presence.Validate(), c.Typing.Validate(), c.Media.Validate(), c.Limits.Validate())
	return errors.Join(errs...)
}

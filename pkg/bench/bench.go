// Package bench is `natter bench`: a load generator that drives Natter over real
// WebSockets, as clients do, and reports end-to-end latency (send to delivery at
// every recipient), throughput and errors.
//
// Modes:
//
//	load      chats of a chosen size, a paced total send rate (the default)
//	fanout    one sender to one chat of --members connected members
//	largegroup one sender to a group of --group-size members built with bulk adds,
//	          --members of them connected; also times the offline members'
//	          notifications (largegroup.go)
//	idle      open connections and hold them; gateway RSS per connection
//	resume    disconnect everyone at once, post while they are away, reconnect
//	          and sync: time until every client has everything, and any loss
//	baseline  raw async JetStream publishes of the same payload to a file-backed
//	          stream: the yardstick for ratios on a noisy machine
//
// A run can spread its connections over child processes (--procs, re-executing the
// binary), over several gateways (--url a,b) and several 127.0.0.x source
// addresses (--local-addrs), and can start an in-process natter (--embedded).
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/publish"
)

// Server is an in-process natter started for --embedded.
type Server struct {
	// WSURLs are the gateways' WebSocket URLs (ws://host:port/ws).
	WSURLs []string
	// NATSURL is the embedded NATS server's client URL.
	NATSURL string
	// DataDir holds the dev secret the bench signs tokens with.
	DataDir string
	// Close stops the server.
	Close func() error
}

// Starter starts an in-process natter with every role, its data in dataDir and
// gateways gateway listeners, configured by serve flags in args (later flags win).
type Starter func(ctx context.Context, dataDir string, gateways int, args []string) (*Server, error)

// Config is a bench run's configuration. Zero counts take the mode's defaults.
type Config struct {
	Mode string `json:"mode"`
	// URLs are gateway WebSocket URLs; connection i uses URLs[i mod len].
	URLs []string `json:"urls"`
	// Embedded starts an in-process natter (temp data dir) with Gateways gateways,
	// configured by ServerArgs (serve flags).
	Embedded   bool   `json:"embedded"`
	Gateways   int    `json:"gateways"`
	ServerArgs string `json:"serverArgs"`

	// Token source: one of these (Embedded sets DataDir).
	DataDir    string `json:"dataDir"`
	SecretFile string `json:"secretFile"`
	TokenURL   string `json:"tokenUrl"`

	// NATSURL is the NATS server for baseline and persister-lag checks.
	NATSURL string `json:"natsUrl"`

	Conns    int `json:"conns"`
	Users    int `json:"users"`
	ChatSize int `json:"chatSize"`
	Chats    int `json:"chats"`
	Senders  int `json:"senders"` // per chat; 0: every member
	Members  int `json:"members"` // fanout, largegroup: connected members
	// GroupSize is the largegroup mode's group (connected and offline members);
	// NotifyTimeout how long it waits for the offline members' notifications.
	GroupSize     int           `json:"groupSize"`
	NotifyTimeout time.Duration `json:"notifyTimeout"`

	Rate     float64       `json:"rate"` // messages/s in total; 0: as fast as Window allows
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
	Size     int           `json:"size"`   // content bytes
	Window   int           `json:"window"` // unacked sends per connection

	LocalAddrs []string `json:"localAddrs"`
	Procs      int      `json:"procs"`

	JSON bool `json:"-"`
	// GatewayPIDs are the server processes whose CPU and RSS are reported, summed
	// (and RSS per process). Empty with --embedded --procs N: this process.
	GatewayPIDs []int `json:"gatewayPids"`
	// MetricsURLs are the servers' admin /metrics endpoints: goroutines and Go heap
	// are read from them with each memory sample.
	MetricsURLs []string `json:"metricsUrls"`
	// SampleEvery is the interval of server memory samples during the window (0:
	// none; samples are always taken at start, created, connected and end).
	SampleEvery time.Duration `json:"sampleEvery"`
	CPUProfile  string        `json:"-"`
	MemProfile  string        `json:"-"`
	PprofURL    string        `json:"-"`

	// Batch and Publishers shape the publish mode: messages per PublishBatch, and
	// goroutines publishing at once.
	Batch      int `json:"batch"`
	Publishers int `json:"publishers"`

	Baseline         bool          `json:"baseline"`
	BaselineDuration time.Duration `json:"baselineDuration"`

	OfflineMsgs       int           `json:"offlineMsgs"`
	DialConcurrency   int           `json:"dialConcurrency"`
	CreateConcurrency int           `json:"createConcurrency"`
	DrainTimeout      time.Duration `json:"drainTimeout"`
	Verbose           bool          `json:"verbose"`

	// Create is how the chats come to exist: "rest" (POST /api/v1/chats, one per
	// chat) or "store" (direct chats written through pkg/store into the server's
	// SQLite file, SQLitePath; see createChatsInStore).
	Create     string `json:"create"`
	SQLitePath string `json:"sqlitePath"`
	// RunID reuses an earlier run's ID (its users, and with Create "existing" its
	// direct chats); empty: a new one.
	RunID string `json:"runId"`

	// Stderr receives progress lines; nil discards them.
	Stderr io.Writer `json:"-"`

	childFile  string
	childIndex int
}

// RegisterFlags registers the bench flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Mode, "mode", "load", "load, fanout, largegroup, idle, resume, publish or baseline")
	config.ListVar(fs, &c.URLs, "url", nil, "gateway WebSocket URL(s), comma-separated (ws://127.0.0.1:8080/ws)")
	fs.BoolVar(&c.Embedded, "embedded", false, "start an in-process natter with a temp data dir and bench it")
	fs.IntVar(&c.Gateways, "gateways", 1, "with --embedded: gateway listeners sharing the embedded NATS server")
	fs.StringVar(&c.ServerArgs, "server-args", "", "with --embedded: serve flags, space-separated (e.g. \"-nats.sync=1s\")")
	fs.StringVar(&c.DataDir, "data-dir", "", "sign tokens with the dev secret of this natter data directory")
	fs.StringVar(&c.SecretFile, "secret-file", "", "sign tokens with this HS256 secret file")
	fs.StringVar(&c.TokenURL, "token-url", "", "get tokens from this endpoint (POST {\"user\":id}, e.g. http://127.0.0.1:8080/api/v1/dev/token)")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS server for --mode baseline, --baseline and the persister-lag check")
	fs.IntVar(&c.Conns, "conns", 0, "connections (default: load 200, idle and resume 1000, fanout --members)")
	fs.IntVar(&c.Users, "users", 0, "users; connection i is user i mod users (default: one user per connection)")
	fs.IntVar(&c.ChatSize, "chat-size", 0, "members per chat: 2 is 1:1 (default 2)")
	fs.IntVar(&c.Chats, "chats", 0, "chats (default: users / chat-size)")
	fs.IntVar(&c.Senders, "senders", 0, "members per chat that send (default: all; fanout: 1)")
	fs.IntVar(&c.Members, "members", 1000, "fanout: members of the one chat, each connected; largegroup: the connected members")
	fs.IntVar(&c.GroupSize, "group-size", 100_000, "largegroup: members of the group (the others offline)")
	fs.DurationVar(&c.NotifyTimeout, "notify-timeout", 10*time.Minute, "largegroup: how long to wait for every offline member's notification")
	fs.Float64Var(&c.Rate, "rate", -1, "total send rate in messages/s, paced open-loop; 0 sends as fast as --window allows (default: load 1000, fanout 2, resume up to 200); publish: a cap on the publishers' total, 0 (default) none")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measurement window (idle: how long connections are held)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "sending before the measurement window (not in the figures)")
	fs.IntVar(&c.Size, "size", 100, "message content bytes")
	fs.IntVar(&c.Window, "window", 64, "most unacked sends per connection")
	config.ListVar(fs, &c.LocalAddrs, "local-addrs", nil, "source addresses, comma-separated; a range like 127.0.0.2-9 is allowed")
	fs.IntVar(&c.Procs, "procs", 0, "spread connections over this many child processes (0: in this process)")
	fs.BoolVar(&c.JSON, "json", false, "print the result as JSON on stdout")
	fs.Var(&pidList{&c.GatewayPIDs}, "gateway-pid", "read CPU and RSS of these server processes from /proc, comma-separated, summed (--embedded with --procs: this process)")
	fs.DurationVar(&c.SampleEvery, "sample-every", 0, "also sample the server's memory this often during the window (load mode; 0: only at start, created, connected, end)")
	config.ListVar(fs, &c.MetricsURLs, "metrics-url", nil, "servers' admin /metrics URLs, comma-separated (http://127.0.0.1:9090/metrics): goroutines and Go heap with each memory sample")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the measurement window here (this process; with --pprof-url the gateway's)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write a heap profile at the end of the window here")
	fs.StringVar(&c.PprofURL, "pprof-url", "", "admin base URL of the server (http://127.0.0.1:9090): take the profiles from its /debug/pprof")
	fs.IntVar(&c.Batch, "batch", 1, "publish: messages per pkg/publish PublishBatch (1..1000)")
	fs.IntVar(&c.Publishers, "publishers", 8, "publish: goroutines publishing batches at once")
	fs.BoolVar(&c.Baseline, "baseline", false, "also measure the JetStream baseline first and report the ratio")
	fs.DurationVar(&c.BaselineDuration, "baseline-duration", 5*time.Second, "how long the baseline publishes")
	fs.IntVar(&c.OfflineMsgs, "offline", 2, "resume: messages posted to each chat while everyone is disconnected")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 64, "connections dialled at once per process")
	fs.IntVar(&c.CreateConcurrency, "create-concurrency", 16, "chats created at once")
	fs.StringVar(&c.Create, "create", "rest", "how chats are created: rest (POST /api/v1/chats), store (direct chats written through pkg/store into the server's SQLite file: fast, for --chats in the millions) or existing (direct chats of the earlier --run)")
	fs.StringVar(&c.RunID, "run", "", "reuse this earlier run's ID: its users, and with --create existing its direct chats (same --conns, --users, --chats)")
	fs.StringVar(&c.SQLitePath, "sqlite-path", "", "with --create store: the server's SQLite file (default <data-dir>/natter.db; --embedded: its temp dir)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 30*time.Second, "after sending stops, how long to wait for outstanding deliveries")
	fs.BoolVar(&c.Verbose, "v", false, "log each connection failure")
	fs.StringVar(&c.childFile, "child", "", "internal: run as a child process with this run file")
	fs.IntVar(&c.childIndex, "child-index", 0, "internal: this child's index")
}

// Resolve fills the mode's defaults and checks the configuration.
func (c *Config) Resolve() error {
	var errs []error
	switch c.Mode {
	case "load":
		c.Conns = or(c.Conns, 200)
		c.ChatSize = or(c.ChatSize, 2)
		if c.Rate < 0 {
			c.Rate = 1000
		}
	case "fanout", "largegroup":
		c.Conns = or(c.Conns, c.Members)
		c.Users = or(c.Users, c.Members)
		c.ChatSize, c.Chats = c.Members, 1
		c.Senders = or(c.Senders, 1)
		if c.Rate < 0 {
			c.Rate = 2
		}
	case "idle":
		c.Conns = or(c.Conns, 1000)
	case "resume":
		c.Conns = or(c.Conns, 1000)
		c.ChatSize = or(c.ChatSize, 2)
		c.Warmup = 0
	case "publish":
		c.Conns = or(c.Conns, 200)
		c.ChatSize = or(c.ChatSize, 2)
		if c.Batch < 1 || c.Batch > publish.MaxBatch {
			errs = append(errs, fmt.Errorf("bench: --batch must be 1..%d", publish.MaxBatch))
		}
		if c.Publishers < 1 || c.Publishers > 1024 {
			errs = append(errs, errors.New("bench: --publishers must be 1..1024"))
		}
		if !c.Embedded && c.NATSURL == "" {
			errs = append(errs, errors.New("bench: --mode publish publishes over NATS: give --nats-url (and --data-dir for the backend user's password) or --embedded"))
		}
		// --rate caps the publishers' total (they still wait for each answer), so a
		// load below saturation can be offered; by default they go as fast as the
		// answers come.
		if c.Rate < 0 {
			c.Rate = 0
		}
	case "baseline":
	default:
		errs = append(errs, fmt.Errorf("bench: unknown --mode %q: load, fanout, largegroup, idle, resume, publish or baseline", c.Mode))
	}
	c.Users = or(c.Users, c.Conns)
	if c.Users > c.Conns && c.Mode != "baseline" {
		errs = append(errs, errors.New("bench: --users must not exceed --conns (every user needs a connection)"))
	}
	if c.Mode == "largegroup" && (c.GroupSize < c.Members || c.GroupSize < 2) {
		errs = append(errs, fmt.Errorf("bench: --group-size must be at least --members (%d)", c.Members))
	}
	if c.Mode == "load" || c.Mode == "resume" || c.Mode == "fanout" || c.Mode == "largegroup" || c.Mode == "publish" {
		if c.ChatSize < 2 || c.ChatSize > c.Users {
			errs = append(errs, fmt.Errorf("bench: --chat-size must be 2..users (%d)", c.Users))
		}
		c.Chats = or(c.Chats, max(c.Users/max(c.ChatSize, 1), 1))
	}
	if c.Mode == "resume" && c.Rate < 0 {
		// About one message per sender and chat before the disconnect, but gently:
		// the priming is not what is measured, and an overloaded server would turn
		// it into unavailable errors. Chats left unprimed resume from seq 0.
		senders := c.ChatSize
		if c.Senders > 0 {
			senders = min(c.Senders, c.ChatSize)
		}
		c.Rate = min(float64(c.Chats*senders)/max(c.Duration.Seconds(), 0.1), 200)
	}
	switch c.Create {
	case "", "rest":
		c.Create = "rest"
	case "store":
		if c.Mode != "load" && c.Mode != "resume" || c.ChatSize != 2 {
			errs = append(errs, errors.New("bench: --create store makes direct chats: --mode load or resume with --chat-size 2"))
		}
		if c.SQLitePath == "" && c.DataDir == "" && !c.Embedded {
			errs = append(errs, errors.New("bench: --create store needs --sqlite-path or --data-dir (the server's SQLite file)"))
		}
	case "existing":
		if c.RunID == "" || c.ChatSize != 2 {
			errs = append(errs, errors.New("bench: --create existing reuses the direct chats of --run (chat-size 2)"))
		}
	default:
		errs = append(errs, fmt.Errorf("bench: unknown --create %q: rest, store or existing", c.Create))
	}
	if c.RunID != "" && !validRunID(c.RunID) {
		errs = append(errs, fmt.Errorf("bench: --run %q is not a run ID (b and 5 of a-z 0-9)", c.RunID))
	}
	if c.ChatSize == 2 && c.Chats > maxDirectChats(c.Users) {
		errs = append(errs, fmt.Errorf("bench: --chats %d: %d users have only %d distinct pairs for direct chats", c.Chats, c.Users, maxDirectChats(c.Users)))
	}
	for _, pid := range c.GatewayPIDs {
		if pid <= 0 {
			errs = append(errs, fmt.Errorf("bench: --gateway-pid %d is not a process ID", pid))
		}
	}
	if c.Size < 1 || c.Size > 16<<10 {
		errs = append(errs, errors.New("bench: --size must be 1..16384 bytes"))
	}
	if c.Duration <= 0 || c.Warmup < 0 {
		errs = append(errs, errors.New("bench: --duration must be > 0 and --warmup >= 0"))
	}
	if c.Procs < 0 || c.Procs > 64 {
		errs = append(errs, errors.New("bench: --procs must be 0..64"))
	}
	if !c.Embedded && len(c.URLs) == 0 && c.Mode != "baseline" {
		errs = append(errs, errors.New("bench: give --url (a gateway's ws://host:port/ws) or --embedded"))
	}
	if c.Mode == "baseline" && !c.Embedded && c.NATSURL == "" {
		errs = append(errs, errors.New("bench: --mode baseline needs --nats-url or --embedded"))
	}
	locals, err := expandAddrs(c.LocalAddrs)
	if err != nil {
		errs = append(errs, err)
	}
	c.LocalAddrs = locals
	return errors.Join(errs...)
}

func or(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// expandAddrs expands "127.0.0.2-9" into 127.0.0.2 .. 127.0.0.9.
func expandAddrs(in []string) ([]string, error) {
	var out []string
	for _, a := range in {
		base, hi, ok := strings.Cut(a, "-")
		if !ok {
			if net.ParseIP(a) == nil {
				return nil, fmt.Errorf("bench: --local-addrs: %q is not an IP address", a)
			}
			out = append(out, a)
			continue
		}
		ip := net.ParseIP(base).To4()
		end, err := strconv.Atoi(hi)
		if ip == nil || err != nil || end < int(ip[3]) || end > 255 {
			return nil, fmt.Errorf("bench: --local-addrs: bad range %q (want like 127.0.0.2-9)", a)
		}
		for x := int(ip[3]); x <= end; x++ {
			out = append(out, fmt.Sprintf("%d.%d.%d.%d", ip[0], ip[1], ip[2], x))
		}
	}
	return out, nil
}

// Main runs `natter bench` with args (after "bench"). start starts an in-process
// natter for --embedded (nil: --embedded is refused).
func Main(args []string, stdout, stderr io.Writer, start Starter) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "natter bench: load generator over real WebSockets (see docs/performance.md)\n\nUsage:\n  natter bench --embedded [flags]\n  natter bench --url ws://127.0.0.1:8080/ws --data-dir DIR [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	cfg.Stderr = stderr
	if cfg.childFile != "" {
		return runChild(cfg.childFile, cfg.childIndex, os.Stdin, stdout, stderr)
	}
	if err := cfg.Resolve(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Embedded {
		if start == nil {
			return errors.New("bench: --embedded is not available in this build")
		}
		dir, err := os.MkdirTemp("", "natter-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// The per-IP connect rate and connection cap would turn a bench's dial storm
		// from a few source addresses into refusals; --server-args can set them back.
		args := append([]string{"-gateway.limits.connect-rate=0", "-gateway.limits.conns-per-ip=0"}, strings.Fields(cfg.ServerArgs)...)
		srv, err := start(ctx, dir, max(cfg.Gateways, 1), args)
		if err != nil {
			return fmt.Errorf("bench: start embedded natter: %w", err)
		}
		defer srv.Close()
		cfg.URLs, cfg.DataDir, cfg.NATSURL = srv.WSURLs, srv.DataDir, srv.NATSURL
		if cfg.Procs > 0 && len(cfg.GatewayPIDs) == 0 {
			cfg.GatewayPIDs = []int{os.Getpid()} // the children hold the client side
		}
		if cfg.SQLitePath == "" {
			cfg.SQLitePath = filepath.Join(dir, "natter.db")
		}
		fmt.Fprintf(stderr, "bench: embedded natter at %s (data %s)\n", strings.Join(cfg.URLs, ","), dir)
	}
	res, err := Run(ctx, &cfg)
	if res != nil {
		if cfg.JSON {
			res.WriteJSON(stdout)
		} else {
			res.WriteTable(stdout)
		}
	}
	return err
}

// pidList is a flag.Value of comma-separated process IDs.
type pidList struct{ p *[]int }

func (l *pidList) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	parts := make([]string, len(*l.p))
	for i, pid := range *l.p {
		parts[i] = strconv.Itoa(pid)
	}
	return strings.Join(parts, ",")
}

func (l *pidList) Set(v string) error {
	*l.p = nil
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("%q is not a process ID", f)
		}
		*l.p = append(*l.p, pid)
	}
	return nil
}

// validRunID reports whether id looks like newRunID's IDs.
func validRunID(id string) bool {
	if len(id) != 6 || id[0] != 'b' {
		return false
	}
	for _, r := range id[1:] {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

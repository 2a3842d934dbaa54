// Package natsutil connects Natter to NATS: an embedded server with JetStream on disk
// for a single machine, or an external server or cluster; and it creates the streams
// the roles share, idempotently, at start.
package natsutil

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/subjects"
)

// Config is the nats section.
type Config struct {
	// URL of an external server or cluster (comma-separated URLs). Empty: embedded.
	URL string `yaml:"url"`
	// Listen is the client address of the embedded server: "none" (the default)
	// serves only in-process connections; "127.0.0.1:4222" also listens for other
	// natter processes and backend services, which must then authenticate with the
	// credentials Natter generates in <data_dir>/nats-credentials (natter creds).
	// Port 0 or -1 picks a free port. A non-loopback address needs ListenTLSCert.
	Listen string `yaml:"listen"`
	// ListenTLSCert and ListenTLSKey are the embedded listener's TLS certificate and
	// key (PEM files). Required for a non-loopback Listen: credentials never cross
	// a network in clear.
	ListenTLSCert string `yaml:"listen_tls_cert"`
	ListenTLSKey  string `yaml:"listen_tls_key"`
	// Prefix of every subject. Default "natter".
	Prefix string `yaml:"prefix"`
	// Partitions is the number of ingress partitions (sequencer shards). 0 chooses:
	// an existing NATTER_IN's own count, else DefaultPartitionsEmbedded or
	// DefaultPartitionsCluster; EnsureIngress (and EnsureOwned) set it. It changes
	// only while NATTER_IN holds no message (partitions.go).
	Partitions int `yaml:"partitions"`
	// Replicas of each stream (1 for a single node, 3 for a cluster).
	Replicas int `yaml:"replicas"`
	// LogMaxAge is how long NATTER_LOG keeps sequenced messages once they are
	// stored: the persisters remove stored messages older than this
	// (persister/trim.go); a message not yet stored is kept however old. 0 keeps
	// stored messages too (until LogMaxBytes pressure).
	LogMaxAge time.Duration `yaml:"log_max_age"`
	// LogMaxBytes caps NATTER_LOG's size; -1 is unlimited. A hard cap: when full,
	// the sequencer's appends fail and sends wait in NATTER_IN (backpressure);
	// above three quarters of it the persisters also remove stored messages older
	// than DedupWindow.
	LogMaxBytes int64 `yaml:"log_max_bytes"`
	// MediaMaxBytes caps the media object store (natter_media) in bytes: when it is
	// full, uploads are refused with storage_full until unshared uploads expire.
	// -1 (or 0) is unlimited. Lowering it below what the bucket holds refuses new
	// uploads until enough expire; nothing stored is deleted.
	MediaMaxBytes int64 `yaml:"media_max_bytes"`
	// DedupWindow is how long JetStream remembers Nats-Msg-Id for deduplication.
	DedupWindow time.Duration `yaml:"dedup_window"`
	// IngressStorage is NATTER_IN's storage: IngressMemory (the default) or
	// IngressFile. A send is acknowledged only once the sequencer has appended it
	// to NATTER_LOG (on disk, synced per Sync), so NATTER_IN's own durability
	// protects nothing acknowledged: in memory, a crash loses only sends not yet
	// acknowledged, which clients resend with the same messageId, and each message
	// is written durably once instead of twice. JetStream cannot change a stream's
	// storage: an existing NATTER_IN keeps its own (see IngressStorageNote).
	IngressStorage string `yaml:"ingress_storage"`
	// IngressMaxBytes caps NATTER_IN's size in bytes (what the sequencers have not
	// taken yet, plus at most a second of what they took). When it is full new
	// sends are refused (the gateway answers unavailable: resend later), never
	// dropped once stored. -1 is unlimited, allowed only with file storage.
	IngressMaxBytes int64 `yaml:"ingress_max_bytes"`
	// Sync is the embedded server's fsync policy: "always" (fsync before every
	// acknowledgement, the default: a single node has no replica to recover an
	// acknowledged message from after a power cut) or a flush interval such as "1s"
	// (faster; a crash of the machine loses up to that much acknowledged data).
	// An external cluster's policy is in its server config (deploy/nats). See
	// docs/operations.md, "Durability".
	Sync string `yaml:"sync"`
	// CredsFile, NKeyFile, User and Password authenticate to an external server.
	CredsFile string `yaml:"creds_file"`
	NKeyFile  string `yaml:"nkey_file"`
	User      string `yaml:"user"`
	// Password comes from PasswordFile, the environment (NATTER_NATS_PASSWORD) or
	// the config file: never a flag.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// TLS for an external server.
	TLSCA   string `yaml:"tls_ca"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// RegisterFlags registers the nats.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "nats.url", "", "external NATS server or cluster URL(s); empty runs an embedded server")
	fs.StringVar(&c.Listen, "nats.listen", "none", "embedded server client address for other processes (with generated credentials, see natter creds); 'none' serves only in-process; port -1 picks one")
	fs.StringVar(&c.ListenTLSCert, "nats.listen-tls-cert", "", "TLS certificate of the embedded listener (required for a non-loopback nats.listen)")
	fs.StringVar(&c.ListenTLSKey, "nats.listen-tls-key", "", "TLS key of the embedded listener")
	fs.StringVar(&c.Prefix, "nats.prefix", subjects.DefaultPrefix, "subject prefix")
	fs.IntVar(&c.Partitions, "nats.partitions", 0, "ingress partitions (sequencer shards); 0: an existing NATTER_IN's own count, for a new one 2 with the embedded server and 16 with nats.url (docs/operations.md)")
	fs.IntVar(&c.Replicas, "nats.replicas", 1, "stream replicas (3 on a cluster)")
	fs.DurationVar(&c.LogMaxAge, "nats.log-max-age", 72*time.Hour, "how long NATTER_LOG keeps messages once the persister has stored them (unstored ones are kept however old); 0 keeps them")
	fs.Int64Var(&c.LogMaxBytes, "nats.log-max-bytes", -1, "NATTER_LOG hard size cap in bytes (when full, sequencing waits); -1 unlimited")
	fs.Int64Var(&c.MediaMaxBytes, "nats.media-max-bytes", 0, "media bucket size cap in bytes; uploads are refused when full; 0: 10GiB, on the embedded server at most half of what its JetStream may store; -1 unlimited")
	fs.DurationVar(&c.DedupWindow, "nats.dedup-window", 2*time.Minute, "Nats-Msg-Id deduplication window")
	fs.StringVar(&c.IngressStorage, "nats.ingress-storage", IngressMemory, "NATTER_IN storage: 'memory' (acks come from the synced log, so one durable write per message) or 'file'; an existing NATTER_IN keeps its storage (see docs/operations.md)")
	fs.Int64Var(&c.IngressMaxBytes, "nats.ingress-max-bytes", DefaultIngressMaxBytes, "NATTER_IN size cap in bytes: when full, sends are refused (unavailable, resend later) until the sequencers catch up; -1 unlimited (file storage only)")
	fs.StringVar(&c.Sync, "nats.sync", "always", "embedded JetStream fsync policy: 'always' (before every ack) or a flush interval such as 1s (see docs/operations.md)")
	fs.StringVar(&c.CredsFile, "nats.creds-file", "", "NATS .creds file (external server)")
	fs.StringVar(&c.NKeyFile, "nats.nkey-file", "", "NATS nkey seed file (external server)")
	fs.StringVar(&c.User, "nats.user", "", "NATS user (external server): the role's user of deploy/nats/accounts.conf, e.g. gateway")
	config.SecretVar(fs, &c.Password, "nats.password", "nats.password-file", "NATS password (external server); never logged")
	fs.StringVar(&c.PasswordFile, "nats.password-file", "", "file holding the NATS password (external server), e.g. from natter creds")
	fs.StringVar(&c.TLSCA, "nats.tls-ca", "", "CA file for the external server's certificate")
	fs.StringVar(&c.TLSCert, "nats.tls-cert", "", "client certificate for the external server")
	fs.StringVar(&c.TLSKey, "nats.tls-key", "", "client key for the external server")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Partitions < 0 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("nats: nats.partitions must be 1..1024, or 0 to choose (docs/operations.md), got %d", c.Partitions))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("nats: nats.replicas must be 1..5, got %d", c.Replicas))
	}
	if c.URL == "" && c.Replicas != 1 {
		errs = append(errs, errors.New("nats: the embedded server is a single node: nats.replicas must be 1 (or set nats.url)"))
	}
	if _, _, err := c.syncPolicy(); err != nil {
		errs = append(errs, err)
	}
	if c.Listen != "none" && c.URL == "" {
		if host, _, err := splitListen(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("nats: nats.listen: %w", err))
		} else if !isLoopback(host) && c.ListenTLSCert == "" {
			errs = append(errs, fmt.Errorf("nats: nats.listen %s is not a loopback address and has no TLS: set nats.listen-tls-cert and nats.listen-tls-key, or listen on 127.0.0.1", c.Listen))
		}
	}
	if (c.ListenTLSCert == "") != (c.ListenTLSKey == "") {
		errs = append(errs, errors.New("nats: set both nats.listen-tls-cert and nats.listen-tls-key"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("nats: set both nats.tls-cert and nats.tls-key"))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("nats: set nats.password or nats.password-file, not both"))
	}
	if c.DedupWindow < time.Second {
		errs = append(errs, errors.New("nats: nats.dedup-window must be at least 1s"))
	}
	if c.LogMaxAge < 0 {
		errs = append(errs, errors.New("nats: nats.log-max-age must be >= 0 (0 keeps messages until nats.log-max-bytes)"))
	}
	if c.LogMaxAge > 0 && c.DedupWindow > c.LogMaxAge {
		// JetStream refuses such a stream: it cannot remember an ID longer than
		// it keeps the message.
		errs = append(errs, fmt.Errorf("nats: nats.dedup-window (%s) must not be longer than nats.log-max-age (%s)", c.DedupWindow, c.LogMaxAge))
	}
	switch c.IngressStorage {
	case IngressMemory:
		if c.IngressMaxBytes < 1<<20 {
			errs = append(errs, fmt.Errorf("nats: nats.ingress-max-bytes must be at least 1MiB with nats.ingress-storage=memory (memory must be bounded), got %d", c.IngressMaxBytes))
		}
	case IngressFile:
		if c.IngressMaxBytes != -1 && c.IngressMaxBytes < 1<<20 {
			errs = append(errs, fmt.Errorf("nats: nats.ingress-max-bytes must be -1 (unlimited) or at least 1MiB, got %d", c.IngressMaxBytes))
		}
	default:
		errs = append(errs, fmt.Errorf("nats: nats.ingress-storage must be %q or %q, got %q", IngressMemory, IngressFile, c.IngressStorage))
	}
	if c.MediaMaxBytes < -1 || (c.MediaMaxBytes > 0 && c.MediaMaxBytes < 1<<20) {
		errs = append(errs, errors.New("nats: nats.media-max-bytes must be -1 (unlimited), 0 (automatic) or >= 1MiB"))
	}
	return errors.Join(errs...)
}

func (c *Config) syncPolicy() (always bool, interval time.Duration, err error) {
	if c.Sync == "always" {
		return true, 0, nil
	}
	d, err := time.ParseDuration(c.Sync)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("nats: nats.sync must be 'always' or a positive duration, got %q", c.Sync)
	}
	return false, d, nil
}

func splitListen(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	if p == 0 {
		p = -1
	}
	return host, p, nil
}

// Subjects returns the subject namer for this configuration.
func (c *Config) Subjects() subjects.Subjects { return subjects.New(c.Prefix, c.Partitions) }

// isLoopback reports whether host (of a listen address) is a loopback name or IP.
// "" and unspecified addresses (0.0.0.0, ::) listen on every interface: not
// loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// subError names the subscription an asynchronous error is about (a slow consumer
// dropped messages on it), so the log says which role's subscription fell behind.
func subError(sub *nats.Subscription, err error) error {
	if sub == nil {
		return err
	}
	msgs, bytes, _ := sub.Pending()
	return fmt.Errorf("%w (subscription %q, queue %q, pending %d messages, %d bytes)", err, sub.Subject, sub.Queue, msgs, bytes)
}

// Connect opens a connection named name: in-process to ns as user (one of Users)
// when ns is not nil, otherwise to c.URL with c's credentials (user is then
// ignored). It reconnects forever. onErr, if not nil, hears the server's
// asynchronous errors, such as a permissions violation.
func Connect(c *Config, ns *Embedded, name, user string, onErr func(error)) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// A server that vanished without closing the connection (power loss, a
		// partition) is noticed after MaxPingsOut unanswered pings: within about
		// 9 s, and the client moves to another node of the cluster.
		nats.PingInterval(3 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ReconnectBufSize(64 << 20),
	}
	if onErr != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) { onErr(subError(sub, err)) }))
	}
	url := c.URL
	if ns != nil {
		pw, ok := ns.Creds[user]
		if !ok {
			return nil, fmt.Errorf("nats: no embedded user %q", user)
		}
		opts = append(opts, nats.InProcessServer(ns.Server), nats.UserInfo(user, pw), nats.CustomInboxPrefix(InboxPrefix(user)))
		// In-process connections skip TLS (the server offers it to them as optional):
		// a tls:// URL would make the client insist and check the listener's name.
		url = strings.Replace(ns.Server.ClientURL(), "tls://", "nats://", 1)
	} else {
		if c.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(c.CredsFile))
		}
		if c.NKeyFile != "" {
			o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
			if err != nil {
				return nil, fmt.Errorf("nats: nkey: %w", err)
			}
			opts = append(opts, o)
		}
		if c.User != "" {
			pw := c.Password
			if c.PasswordFile != "" {
				var err error
				if pw, err = config.ReadSecretFile(c.PasswordFile); err != nil {
					return nil, fmt.Errorf("nats: nats.password-file: %w", err)
				}
			}
			opts = append(opts, nats.UserInfo(c.User, pw))
			if slices.Contains(Users, c.User) && c.User != UserAdmin {
				// The role's user may read only its own inbox.
				opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(c.User)))
			}
		}
		if c.TLSCA != "" {
			opts = append(opts, nats.RootCAs(c.TLSCA))
		}
		if c.TLSCert != "" {
			opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w (is the server up? check nats.url and the credentials: natter creds)", redactURL(url), err)
	}
	return nc, nil
}

func redactURL(u string) string {
	if u == "" {
		return "(in-process)"
	}
	return u
}

// DefaultConfig returns a Config with the flag defaults, for tests and tools.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

package notifier

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// Config is the notifier section.
type Config struct {
	// WebhookURL receives every notification as an HTTP POST of JSON (see
	// docs/presence.md for the body and the signature). Empty: notifications go only
	// to natter.notify.<uid>.
	WebhookURL string `yaml:"webhook_url"`
	// WebhookSecretFile holds the HMAC-SHA256 key that signs webhook requests
	// (surrounding whitespace ignored). Required with WebhookURL; never logged.
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// WebhookTimeout bounds one webhook request.
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	// Attempts is how many times a notification is tried before it goes to the
	// dead-letter stream NATTER_DLQ (at least 1).
	Attempts int `yaml:"attempts"`
	// Backoff is the wait after the first failed attempt; it doubles per attempt (with
	// jitter) up to MaxBackoff.
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Window coalesces: the first message to an offline user in a chat opens a
	// window, and one notification for everything that arrived in it goes out when
	// it closes. Rounded up to whole seconds; at least 1s.
	Window time.Duration `yaml:"window"`
	// PreviewBytes is how much of the last message's content a notification carries
	// (cut at a UTF-8 boundary); 0 leaves content out.
	PreviewBytes int `yaml:"preview_bytes"`
	// LargeChatMembers: in chats with more members, a message opens one window for
	// the chat instead of one per recipient, and the window's notifications are
	// sent in batches when it closes (large.go).
	LargeChatMembers int `yaml:"large_chat_members"`
	// BatchSize is how many members of a large chat one batch reads and notifies.
	BatchSize int `yaml:"batch_size"`
	// MaxRecipients is the most members one large chat's window notifies (the first
	// in user ID order); the others are counted in
	// natter_notifier_recipients_over_limit_total and logged.
	MaxRecipients int `yaml:"max_recipients"`
	// LargeChatRate is how many notifications per second this instance's
	// large-chat passes send, all passes together (pacing.go), so that a pass over
	// a 100,000-member chat does not take the CPU real-time delivery needs. 0:
	// unlimited. Time spent waiting for it shows in
	// natter_notifier_large_chat_paced_seconds_total.
	LargeChatRate float64 `yaml:"large_chat_rate"`
	// SenderPushRate and SenderPushBurst are the token bucket of the notifications
	// one sender's messages may cause, per second, per notifier instance (budget.go).
	// Over it, recipients get no push for that message (they still get the message).
	// 0 rate: unlimited.
	SenderPushRate  float64 `yaml:"sender_push_rate"`
	SenderPushBurst int     `yaml:"sender_push_burst"`
	// Workers is how many messages and notifications this instance handles at once.
	Workers int `yaml:"workers"`
	// DLQMaxAge is how long NATTER_DLQ keeps failed notifications for replay.
	DLQMaxAge time.Duration `yaml:"dlq_max_age"`
}

// RegisterFlags registers the notifier.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.WebhookURL, "notifier.webhook-url", "", "POST notifications to this URL (empty: only natter.notify.<uid>)")
	fs.StringVar(&c.WebhookSecretFile, "notifier.webhook-secret-file", "", "file with the HMAC-SHA256 key signing webhook requests (required with webhook-url)")
	fs.DurationVar(&c.WebhookTimeout, "notifier.webhook-timeout", 10*time.Second, "longest webhook request")
	fs.IntVar(&c.Attempts, "notifier.attempts", 6, "webhook attempts before a notification goes to NATTER_DLQ")
	fs.DurationVar(&c.Backoff, "notifier.backoff", time.Second, "wait after the first failed webhook attempt; doubles per attempt")
	fs.DurationVar(&c.MaxBackoff, "notifier.max-backoff", 30*time.Second, "longest wait between webhook attempts")
	fs.DurationVar(&c.Window, "notifier.window", 3*time.Second, "coalescing window per user and chat (whole seconds)")
	fs.IntVar(&c.PreviewBytes, "notifier.preview-bytes", 200, "bytes of the last message's content in a notification; 0: none")
	fs.IntVar(&c.LargeChatMembers, "notifier.large-chat-members", 1000, "above this many members a chat's notifications are coalesced per chat window and sent in batches")
	fs.IntVar(&c.BatchSize, "notifier.batch-size", 500, "members of a large chat read and notified per batch")
	fs.IntVar(&c.MaxRecipients, "notifier.max-recipients", 100_000, "most members one large chat's window notifies; the rest are counted (metric) and logged")
	fs.Float64Var(&c.LargeChatRate, "notifier.large-chat-rate", 2000, "notifications per second large-chat passes send, per instance, all passes together (0: unlimited)")
	fs.Float64Var(&c.SenderPushRate, "notifier.sender-push-rate", 20, "push notifications one sender's messages may cause per second, per instance (0: unlimited)")
	fs.IntVar(&c.SenderPushBurst, "notifier.sender-push-burst", 1000, "burst of push notifications one sender's messages may cause")
	fs.IntVar(&c.Workers, "notifier.workers", 32, "messages and notifications handled concurrently")
	fs.DurationVar(&c.DLQMaxAge, "notifier.dlq-max-age", 7*24*time.Hour, "how long NATTER_DLQ keeps failed notifications")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("notifier: notifier.webhook-url %q must be an http or https URL", c.WebhookURL))
		}
		if c.WebhookSecretFile == "" {
			errs = append(errs, errors.New("notifier: notifier.webhook-url needs notifier.webhook-secret-file (requests are always signed)"))
		}
	}
	if c.WebhookTimeout <= 0 {
		errs = append(errs, errors.New("notifier: notifier.webhook-timeout must be > 0"))
	}
	if c.Attempts < 1 || c.Attempts > 100 {
		errs = append(errs, errors.New("notifier: notifier.attempts must be 1..100"))
	}
	if c.Backoff <= 0 || c.MaxBackoff < c.Backoff {
		errs = append(errs, errors.New("notifier: notifier.backoff must be > 0 and <= notifier.max-backoff"))
	}
	if c.Window < time.Second {
		errs = append(errs, errors.New("notifier: notifier.window must be >= 1s"))
	}
	if c.PreviewBytes < 0 {
		errs = append(errs, errors.New("notifier: notifier.preview-bytes must be >= 0"))
	}
	if c.MaxRecipients < 1 {
		errs = append(errs, errors.New("notifier: notifier.max-recipients must be >= 1"))
	}
	if c.LargeChatMembers < 2 {
		errs = append(errs, errors.New("notifier: notifier.large-chat-members must be >= 2"))
	}
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		errs = append(errs, errors.New("notifier: notifier.batch-size must be 1..1000"))
	}
	if c.LargeChatRate < 0 {
		errs = append(errs, errors.New("notifier: notifier.large-chat-rate must be >= 0 (0: unlimited)"))
	}
	if c.SenderPushRate < 0 || (c.SenderPushRate > 0 && c.SenderPushBurst < 1) {
		errs = append(errs, errors.New("notifier: notifier.sender-push-rate must be >= 0, and sender-push-burst >= 1 with a rate"))
	}
	if c.Workers < 1 || c.Workers > 1024 {
		errs = append(errs, errors.New("notifier: notifier.workers must be 1..1024"))
	}
	if c.DLQMaxAge < time.Minute {
		errs = append(errs, errors.New("notifier: notifier.dlq-max-age must be >= 1m"))
	}
	return errors.Join(errs...)
}

// wholeSeconds rounds d up to whole seconds, at least one (NATS message TTLs).
func wholeSeconds(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

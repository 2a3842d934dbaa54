package presence

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config is the presence section.
type Config struct {
	// Expiry is the TTL of a gateway's lease in the presence bucket: a gateway whose
	// heartbeats stop for this long is dead and its users go offline, with nobody
	// telling anyone. Rounded up to whole seconds (NATS per-message TTLs are whole
	// seconds); at least 1s. It must comfortably exceed the gateways'
	// gateway.presence-heartbeat (3x is safe).
	Expiry time.Duration `yaml:"expiry"`
	// Grace is how long a user whose last device disconnected is still shown online,
	// so a quick reconnect (a network change, a page reload) does not flap their
	// status. 0 shows them offline at once; otherwise rounded up to whole seconds.
	Grace time.Duration `yaml:"grace"`
	// Workers is how many reports and timers this instance handles at once.
	Workers int `yaml:"workers"`
}

// RegisterFlags registers the presence.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Expiry, "presence.expiry", 30*time.Second, "a gateway silent this long is dead and its users go offline (whole seconds)")
	fs.DurationVar(&c.Grace, "presence.grace", 5*time.Second, "how long a user whose last device left still shows online, against flapping; 0: at once")
	fs.IntVar(&c.Workers, "presence.workers", 8, "reports and timers handled concurrently")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Expiry < time.Second {
		errs = append(errs, fmt.Errorf("presence: presence.expiry must be >= 1s, got %s", c.Expiry))
	}
	if c.Grace < 0 || (c.Grace > 0 && c.Grace < time.Second) {
		errs = append(errs, fmt.Errorf("presence: presence.grace must be 0 or >= 1s, got %s", c.Grace))
	}
	if c.Workers < 1 || c.Workers > 1024 {
		errs = append(errs, errors.New("presence: presence.workers must be 1..1024"))
	}
	return errors.Join(errs...)
}

// wholeSeconds rounds d up to whole seconds, at least one: NATS message TTLs are
// whole seconds and a shorter one is refused.
func wholeSeconds(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

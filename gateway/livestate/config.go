package livestate

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// PresenceConfig is the presence part of the gateway section (flags gateway.presence-*).
type PresenceConfig struct {
	// Heartbeat is how often the gateway renews its presence lease. It must be well
	// under the presence role's presence.expiry (a third or less), or the gateway's
	// users flap offline.
	Heartbeat time.Duration `yaml:"presence_heartbeat"`
	// MaxSubs caps how many users one connection may watch with presence_sub.
	MaxSubs int `yaml:"presence_max_subs"`
}

// RegisterFlags registers the gateway.presence-* flags.
func (c *PresenceConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Heartbeat, "gateway.presence-heartbeat", 10*time.Second, "how often the gateway renews its presence lease (well under presence.expiry)")
	fs.IntVar(&c.MaxSubs, "gateway.presence-max-subs", 1000, "users one connection may watch with presence_sub")
}

// Validate checks the presence settings.
func (c *PresenceConfig) Validate() error {
	var errs []error
	if c.Heartbeat < 100*time.Millisecond {
		errs = append(errs, errors.New("gateway: gateway.presence-heartbeat must be >= 100ms"))
	}
	if c.MaxSubs < 1 {
		errs = append(errs, errors.New("gateway: gateway.presence-max-subs must be >= 1"))
	}
	return errors.Join(errs...)
}

// TypingConfig is the typing part of the gateway section (flags gateway.typing-*).
type TypingConfig struct {
	// Throttle is the shortest interval between two forwarded starts of one user in
	// one chat; clients typing continuously should send start about this often.
	Throttle time.Duration `yaml:"typing_throttle"`
	// Expiry is how long an indicator lasts without a new start before the gateway
	// sends stop by itself. Longer than Throttle.
	Expiry time.Duration `yaml:"typing_expiry"`
	// MaxMembers: typing in chats with more members is dropped.
	MaxMembers int `yaml:"typing_max_members"`
}

// RegisterFlags registers the gateway.typing-* flags.
func (c *TypingConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Throttle, "gateway.typing-throttle", 3*time.Second, "forward at most one typing start per user and chat this often")
	fs.DurationVar(&c.Expiry, "gateway.typing-expiry", 6*time.Second, "send typing stop after this long without a start")
	fs.IntVar(&c.MaxMembers, "gateway.typing-max-members", 200, "drop typing in chats with more members than this")
}

// Validate checks the typing settings.
func (c *TypingConfig) Validate() error {
	var errs []error
	if c.Throttle <= 0 {
		errs = append(errs, errors.New("gateway: gateway.typing-throttle must be > 0"))
	}
	if c.Expiry <= c.Throttle {
		errs = append(errs, errors.New("gateway: gateway.typing-expiry must be longer than gateway.typing-throttle"))
	}
	if c.MaxMembers < 2 || c.MaxMembers >= store.MaxMemberPage {
		// One more than the limit is read in one page (MemberIDs).
		errs = append(errs, fmt.Errorf("gateway: gateway.typing-max-members must be 2..%d", store.MaxMemberPage-1))
	}
	return errors.Join(errs...)
}

// Package sequencer is the role that gives each chat its total order: it consumes
// NATTER_IN one partition at a time, checks membership, stamps seq = last + 1, appends
// to NATTER_LOG fenced by Nats-Expected-Last-Subject-Sequence (under load, what a
// partition has been delivered goes in one atomic batch: batch.go), and fans out.
package sequencer

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config is the sequencer section.
type Config struct {
	// MaxChats bounds the per-chat state cache (last seq, members). Evicted chats are
	// reloaded from the log and the store.
	MaxChats int `yaml:"max_chats"`
	// LargeChatThreshold: chats with more members than this are not fanned out per
	// user; gateways subscribe to their log subject instead.
	LargeChatThreshold int `yaml:"large_chat_threshold"`
	// MaxGroupMembers is the most members a group may have: an add that would take
	// a group past it is refused with group_full as it is sequenced (groupcap.go),
	// however many adds race. The gateway checks gateway.max-group-members first (a
	// fast path); set both to the same value.
	MaxGroupMembers int `yaml:"max_group_members"`
	// PinnedTTL is how long a partition stays pinned to a sequencer instance that
	// stopped pulling: the failover time after a crash.
	PinnedTTL time.Duration `yaml:"pinned_ttl"`
	// Fetch is how many ingress messages one pull asks for per partition.
	Fetch int `yaml:"fetch"`
	// BatchMin is the fewest log messages a partition appends as one JetStream
	// atomic batch (batch.go); what it has been delivered that makes fewer is
	// appended one message at a time. 0: never batch. A batch costs a few fsyncs
	// whatever the sync policy, so it pays with nats.sync=always and a backlog, and
	// may not with an interval sync on a slow disk.
	BatchMin int `yaml:"batch_min"`
	// Retention is the server-wide retention period: every message sequenced while
	// it is set expires this long after it was sent (a chat's shorter message TTL
	// wins), on every store, in history, search and push (docs/privacy.md). 0 (the
	// default) keeps messages forever. It applies to messages sequenced from the
	// time it is set: lowering it does not shorten what is already stored.
	Retention time.Duration `yaml:"retention"`
}

// RegisterFlags registers the sequencer.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxChats, "sequencer.max-chats", 100_000, "chats whose state the sequencer keeps in memory")
	fs.IntVar(&c.LargeChatThreshold, "sequencer.large-chat-threshold", 1000, "members above which a chat is delivered through its log subject instead of per-user fan-out")
	fs.IntVar(&c.MaxGroupMembers, "sequencer.max-group-members", 100_000, "most members of a group, enforced as adds are sequenced (group_full past it); keep equal to gateway.max-group-members")
	fs.DurationVar(&c.PinnedTTL, "sequencer.pinned-ttl", 5*time.Second, "failover time: how long a silent sequencer keeps its partitions")
	fs.IntVar(&c.Fetch, "sequencer.fetch", 512, "ingress messages pulled per request")
	fs.DurationVar(&c.Retention, "sequencer.retention", 0, "server-wide message retention: messages expire this long after they are sent (0: keep forever; a chat's shorter TTL wins; applies to messages sequenced from then on)")
	fs.IntVar(&c.BatchMin, "sequencer.batch-min", 16, "fewest log messages a partition appends as one atomic batch; smaller drains are appended one at a time (0: never batch)")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxChats < 16 {
		errs = append(errs, fmt.Errorf("sequencer: sequencer.max-chats must be >= 16, got %d", c.MaxChats))
	}
	if c.LargeChatThreshold < 1 {
		errs = append(errs, errors.New("sequencer: sequencer.large-chat-threshold must be >= 1"))
	}
	if c.MaxGroupMembers < 2 || c.MaxGroupMembers > 1_000_000 {
		errs = append(errs, fmt.Errorf("sequencer: sequencer.max-group-members must be 2..1000000, got %d", c.MaxGroupMembers))
	}
	if c.PinnedTTL < 2*time.Second {
		// A sequencer pulls with a 1 s expiry: a shorter TTL unpins live instances.
		errs = append(errs, errors.New("sequencer: sequencer.pinned-ttl must be >= 2s (pulls expire after 1s)"))
	}
	if c.Fetch < 1 || c.Fetch > 10_000 {
		errs = append(errs, errors.New("sequencer: sequencer.fetch must be 1..10000"))
	}
	if c.BatchMin != 0 && (c.BatchMin < 2 || c.BatchMin > maxBatch) {
		errs = append(errs, fmt.Errorf("sequencer: sequencer.batch-min must be 0 or 2..%d, got %d", maxBatch, c.BatchMin))
	}
	if c.Retention != 0 && (c.Retention < time.Minute || c.Retention%time.Second != 0) {
		errs = append(errs, fmt.Errorf("sequencer: sequencer.retention must be 0 (keep forever) or whole seconds of at least 1m, got %s", c.Retention))
	}
	return errors.Join(errs...)
}

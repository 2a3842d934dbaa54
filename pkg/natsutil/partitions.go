package natsutil

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/subjects"
)

// The number of ingress partitions (Config.Partitions).
//
// Each partition is sequenced by one pinned consumer, one message or one batch at a
// time, and its log appends are batched only from what that partition has in hand
// (sequencer/batch.go). Partitions are the ceiling of sequencing parallelism across
// sequencer instances, but on one machine more of them cut the batches smaller:
// with the embedded server on the reference machine (2 cores), 16 partitions turned
// a backend batch of 50 sends over 2,000 chats into about three per partition,
// each appended with an fsync of its own, while 2 partitions kept them in atomic
// batches: 5,100-7,300 against 1,150-1,500 msg/s acknowledged, and 1:1 traffic over
// WebSockets had a p99 several times lower at the same CPU per message
// (docs/performance.md, "Fewer partitions on one machine").
const (
	// DefaultPartitionsEmbedded is the count of a new NATTER_IN on the embedded
	// server: one process sequences it.
	DefaultPartitionsEmbedded = 2
	// DefaultPartitionsCluster is the count of a new NATTER_IN on an external NATS
	// server or cluster, where sequencer instances may be added up to it.
	DefaultPartitionsCluster = 16
)

// ErrPartitionsChanged is resolvePartitions refusing a partition count that differs
// from the one NATTER_IN was created with while it holds sends: waiting does not
// change it, the operator does.
var ErrPartitionsChanged = errors.New("ingress partitions changed")

// streamPartitions returns the partition count NATTER_IN was created with, 0 when
// its configuration does not say.
func streamPartitions(cfg jetstream.StreamConfig) int {
	if cfg.SubjectTransform == nil {
		return 0
	}
	return subjects.TransformPartitions(cfg.SubjectTransform.Destination)
}

// resolvePartitions settles c.Partitions against NATTER_IN as it exists (info; nil:
// it does not exist yet):
//   - unset (0): an existing stream's own count, so no deployment changes its count
//     by upgrading; for a new stream DefaultPartitionsEmbedded with the embedded
//     server, DefaultPartitionsCluster with nats.url;
//   - set, and the stream has another count: allowed while the stream holds no
//     message (the transform is updated, and sends published meanwhile find no
//     message of theirs in another partition); refused otherwise, because sends
//     stored under the old count would wait in partitions no consumer reads, or be
//     sequenced out of order with later sends of the same chat.
func resolvePartitions(c *Config, info *jetstream.StreamInfo) error {
	have := 0
	if info != nil {
		have = streamPartitions(info.Config)
	}
	switch {
	case c.Partitions == 0 && have > 0:
		c.Partitions = have
	case c.Partitions == 0 && c.URL == "":
		c.Partitions = DefaultPartitionsEmbedded
	case c.Partitions == 0:
		c.Partitions = DefaultPartitionsCluster
	case have > 0 && have != c.Partitions && info.State.Msgs > 0:
		return fmt.Errorf("%w: nats.partitions is %d but %s was created with %d and still holds messages (%d): "+
			"leave nats.partitions unset (or %d); to change it, stop the gateways and backend publishers, wait until "+
			"natter_consumer_pending{stream=%q} is 0 and the stream is purged (a few seconds), then start with the new count "+
			"(docs/operations.md, \"Ingress partitions\")",
			ErrPartitionsChanged, c.Partitions, subjects.InStream, have, info.State.Msgs, have, subjects.InStream)
	}
	return nil
}

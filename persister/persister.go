// Package persister is the role that writes sequenced messages from NATTER_LOG into
// the store. Instances share one durable consumer; writes are idempotent by
// (chat, seq), and a batch is acked only after the store has it.
package persister

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Config is the persister section.
type Config struct {
	// Batch is the most messages written to the store in one call.
	Batch int `yaml:"batch"`
	// MaxWait is how long a pull waits to fill a batch before writing what it has.
	MaxWait time.Duration `yaml:"max_wait"`
	// MaxBackoff caps the retry delay while the store is failing.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// AckWait is how long a crashed persister's unacked messages wait before they
	// are redelivered to another instance. A live instance keeps a slow batch
	// from being redelivered by signalling progress.
	AckWait time.Duration `yaml:"ack_wait"`
}

// RegisterFlags registers the persister.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Batch, "persister.batch", 500, "messages written to the store per batch")
	fs.DurationVar(&c.MaxWait, "persister.max-wait", 20*time.Millisecond, "how long to wait to fill a batch")
	fs.DurationVar(&c.MaxBackoff, "persister.max-backoff", 5*time.Second, "longest retry delay while the store fails")
	fs.DurationVar(&c.AckWait, "persister.ack-wait", 10*time.Second, "redelivery delay of a crashed persister's unacked messages")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Batch < 1 || c.Batch > 10_000 {
		errs = append(errs, fmt.Errorf("persister: persister.batch must be 1..10000, got %d", c.Batch))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, errors.New("persister: persister.max-wait must be > 0"))
	}
	if c.AckWait < time.Second {
		errs = append(errs, errors.New("persister: persister.ack-wait must be >= 1s"))
	}
	if c.MaxBackoff < 10*time.Millisecond {
		errs = append(errs, errors.New("persister: persister.max-backoff must be >= 10ms"))
	}
	return errors.Join(errs...)
}

// ConsumerName is the durable consumer all persister instances share.
const ConsumerName = "PERSISTER"

// Deps are what the persister needs from the process.
type Deps struct {
	JS       jetstream.JetStream
	Store    store.Store
	Subjects subjects.Subjects
}

// Persister is the persister role.
type Persister struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
}

// New returns a persister.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Persister, error) {
	return &Persister{cfg: cfg, deps: deps, log: logger.With(zap.String("role", "persister"))}, nil
}

// Consumer creates or updates the shared durable consumer and returns it.
func Consumer(ctx context.Context, js jetstream.JetStream, s subjects.Subjects, batch int, ackWait time.Duration) (jetstream.Consumer, error) {
	return js.CreateOrUpdateConsumer(ctx, subjects.LogStream, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		FilterSubject: s.LogAll(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: batch * 8,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
}

// Run persists until ctx ends. On store errors it retries the same batch with
// backoff and does not ack, so nothing is lost while the store is down.
func (p *Persister) Run(ctx context.Context) error {
	cons, err := Consumer(ctx, p.deps.JS, p.deps.Subjects, p.cfg.Batch, p.cfg.AckWait)
	if err != nil {
		return fmt.Errorf("persister: consumer: %w", err)
	}
	for ctx.Err() == nil {
		// Missed heartbeats re-issue the pull inside the iterator (see the sequencer).
		it, err := cons.Messages(jetstream.PullMaxMessages(p.cfg.Batch*2), jetstream.WithMessagesErrOnMissingHeartbeat(false))
		if err != nil {
			p.log.Warn("pull from log failed; retrying", zap.Error(err))
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		p.drain(ctx, it)
		it.Stop()
	}
	return nil
}

// drain reads batches from it until it fails or ctx ends: the first message blocks,
// the rest of a batch is what arrives within MaxWait.
func (p *Persister) drain(ctx context.Context, it jetstream.MessagesContext) {
	work, stop := graceContext(ctx, func() bool { return !p.deps.JS.Conn().IsClosed() }) // a batch taken is written and acked even if ctx ends
	defer stop()
	msgs := make([]jetstream.Msg, 0, p.cfg.Batch)
	for ctx.Err() == nil {
		first, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("log iterator ended; restarting", zap.Error(err))
			}
			return
		}
		msgs = append(msgs[:0], first)
		for len(msgs) < p.cfg.Batch {
			m, err := it.Next(jetstream.NextMaxWait(p.cfg.MaxWait))
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		p.persist(work, msgs)
	}
}

// persist writes one batch and acks it, retrying until the store takes it.
func (p *Persister) persist(ctx context.Context, msgs []jetstream.Msg) {
	out := make([]protocol.Message, 0, len(msgs))
	for _, jm := range msgs {
		m, err := protocol.DecodeMessageFrame(jm.Data())
		if err != nil {
			p.log.Error("undecodable log message skipped", zap.String("subject", jm.Subject()), zap.Error(err))
			continue
		}
		out = append(out, m)
	}
	backoff := 20 * time.Millisecond
	lastProgress := time.Now()
	for attempt := 0; ; attempt++ {
		err := p.deps.Store.AppendMessages(ctx, out)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return // not acked: redelivered to another instance or after restart
		}
		if attempt%10 == 0 {
			p.log.Warn("store write failed; retrying without ack", zap.Int("batch", len(out)), zap.Error(err))
		}
		// Keep the messages from being redelivered elsewhere while we retry.
		if time.Since(lastProgress) > p.cfg.AckWait/3 {
			for _, jm := range msgs {
				_ = jm.InProgress()
			}
			lastProgress = time.Now()
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, p.cfg.MaxBackoff)
	}
	// Each message is acked on its own: with several instances sharing the consumer,
	// an ack-all could cover another instance's messages that are not stored yet.
	for _, jm := range msgs {
		if err := jm.Ack(); err != nil {
			p.log.Debug("ack failed; the message will be redelivered and skipped as stored", zap.Error(err))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) { lifecycle.Sleep(ctx, d) }

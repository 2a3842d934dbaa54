// Package persister is the role that writes sequenced messages from NATTER_LOG into
// the store. Instances share one durable consumer; writes are idempotent by
// (chat, seq), and a batch is acked only after the store has it.
package persister

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
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

// DefaultBatch is persister.batch's default: the most messages one store write
// takes. A persister that keeps up writes what arrived meanwhile, far fewer; one
// that lags writes full batches, and a larger batch touches each chat's pages
// (its message rows, its message-ID index, its chat row, the sender's read state)
// once for more of its messages: on SQLite at a saturating load 2,000 cost about a
// fifth less CPU per message than 500 (docs/performance.md, "Larger persister
// batches").
const DefaultBatch = 2000

// RegisterFlags registers the persister.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Batch, "persister.batch", DefaultBatch, "messages written to the store per batch")
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

// Deps are what the persister needs from the process.
type Deps struct {
	JS       jetstream.JetStream
	Store    Store
	Subjects subjects.Subjects
	// Retention says what of NATTER_LOG the persister trims once stored (trim.go).
	Retention Retention
}

// Persister is the persister role.
type Persister struct {
	cfg    Config
	deps   Deps
	log    *zap.Logger
	parked *parking
}

// New returns a persister.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Persister, error) {
	return &Persister{cfg: cfg, deps: deps, log: logger.With(zap.String("role", "persister")), parked: newParking(cfg.MaxBackoff)}, nil
}

// ParkedPending is how many messages of parked chats (park.go) the shared consumer
// may hold unacked on top of the batches in hand. Parked messages stay unacked until
// the store takes them; once they fill this, the consumer delivers nothing more, to
// any chat: backpressure, seen as natter_consumer_ack_pending{consumer="PERSISTER"}
// and natter_persister_parked_chats.
const ParkedPending = 100_000

// Consumer creates or updates the shared durable consumer and returns it.
func Consumer(ctx context.Context, js jetstream.JetStream, s subjects.Subjects, batch int, ackWait time.Duration) (jetstream.Consumer, error) {
	return js.CreateOrUpdateConsumer(ctx, subjects.LogStream, jetstream.ConsumerConfig{
		Durable:       subjects.PersisterConsumer,
		FilterSubject: s.LogAll(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: batch*8 + ParkedPending,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
}

// Run persists until ctx ends. While the store is down it retries the same batch
// with backoff and does not ack, so nothing is lost; a chat the store refuses while
// it answers is parked and retried (park.go) while the other chats go on. It also
// trims NATTER_LOG of what is stored (trim.go).
func (p *Persister) Run(ctx context.Context) error {
	cons, err := Consumer(ctx, p.deps.JS, p.deps.Subjects, p.cfg.Batch, p.cfg.AckWait)
	if err != nil {
		return fmt.Errorf("persister: consumer: %w", err)
	}
	trimDone, sweepDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(trimDone); p.trimLoop(ctx) }()
	go func() { defer close(sweepDone); p.sweepLoop(ctx) }() // lifecycle.go
	defer func() { <-trimDone; <-sweepDone }()
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

// maxFill bounds how long a batch fills, from its first message: at most a second,
// and a quarter of the ack wait, so that a batch's first message is written long
// before the server would redeliver it. Without it a steady trickle (one message
// every MaxWait or less) kept a batch filling until it held Batch messages:
// 2,000 × 20 ms is 40 s.
func (c Config) maxFill() time.Duration { return min(time.Second, c.AckWait/4) }

// drain reads batches from it until it fails or ctx ends: the first message blocks,
// the rest of a batch is what arrives, each within MaxWait of the one before, until
// the batch holds Batch messages or has filled for maxFill.
func (p *Persister) drain(ctx context.Context, it jetstream.MessagesContext) {
	work, stop := graceContext(ctx, func() bool { return !p.deps.JS.Conn().IsClosed() }) // a batch taken is written and acked even if ctx ends
	defer stop()
	msgs := make([]jetstream.Msg, 0, p.cfg.Batch)
	fill := p.cfg.maxFill()
	for ctx.Err() == nil {
		first, err := natsutil.Next(ctx, it) // not it.Next(): its stall (natsutil.Next)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("log iterator ended; restarting", zap.Error(err))
			}
			return
		}
		msgs = append(msgs[:0], first)
		end := time.Now().Add(fill)
		for len(msgs) < p.cfg.Batch {
			wait := min(p.cfg.MaxWait, time.Until(end))
			if wait <= 0 {
				break
			}
			m, err := it.Next(jetstream.NextMaxWait(wait))
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		p.persist(work, msgs)
	}
}

// persist writes one batch and acks it. The batch is written in one store call;
// chats parked by an earlier failure (park.go) are left out and negatively acked
// until their retry is due. If the batch fails while the store is down (Ping
// fails too) it is retried whole with backoff, unacked, as long as that lasts; if
// it fails while the store answers, each chat is written on its own, so one chat
// the store refuses cannot hold back the others: that chat is parked.
func (p *Persister) persist(ctx context.Context, msgs []jetstream.Msg) {
	now := time.Now()
	decoded := make([]protocol.Message, len(msgs))
	var healthy, undecodable []jetstream.Msg
	var healthyIdx []int
	var out []protocol.Message
	byChat := map[string][]int{} // chats written on their own: indexes into msgs
	var chats []string
	own := func(chat string, i int) {
		if byChat[chat] == nil {
			chats = append(chats, chat)
		}
		byChat[chat] = append(byChat[chat], i)
	}
	for i, jm := range msgs {
		m, err := protocol.DecodeMessageFrame(jm.Data())
		if err != nil {
			p.log.Error("undecodable log message skipped", zap.String("subject", jm.Subject()), zap.Error(err))
			undecodable = append(undecodable, jm)
			continue
		}
		decoded[i] = m
		switch wait := p.parked.wait(m.ChatID, now); {
		case wait > 0:
			_ = jm.NakWithDelay(wait) // still parked: redelivered when its retry is due
		case p.parked.isParked(m.ChatID):
			own(m.ChatID, i) // parked, retry due
		default:
			healthy, healthyIdx, out = append(healthy, jm), append(healthyIdx, i), append(out, m)
		}
	}
	ackAll(p.log, undecodable)
	if len(out) > 0 && !p.writeAll(ctx, healthy, out) {
		if ctx.Err() != nil {
			return // not acked: redelivered to another instance or after restart
		}
		// The store answers but refused the batch: find the chats it refuses.
		for _, i := range healthyIdx {
			own(decoded[i].ChatID, i)
		}
	}
	for _, chat := range chats {
		if ctx.Err() != nil {
			return
		}
		idx := byChat[chat]
		group, jms := make([]protocol.Message, len(idx)), make([]jetstream.Msg, len(idx))
		for k, i := range idx {
			group[k], jms[k] = decoded[i], msgs[i]
		}
		p.writeChat(ctx, chat, jms, group)
	}
}

// writeAll writes out (the decoded messages of jms) in one store call and acks
// them. While the call fails and the store does not answer a ping either (the
// store is down, not one chat), it retries with backoff without acking, signalling
// progress so the messages are not redelivered elsewhere meanwhile. It returns
// false, nothing acked, if ctx ended or the store refused the batch while it
// answers pings.
func (p *Persister) writeAll(ctx context.Context, jms []jetstream.Msg, out []protocol.Message) bool {
	lastProgress := time.Now()
	err := lifecycle.Retry(ctx, lifecycle.Backoff{Initial: min(20*time.Millisecond, p.cfg.MaxBackoff), Max: p.cfg.MaxBackoff},
		func() error {
			err := p.deps.Store.AppendMessages(ctx, out)
			if err == nil || ctx.Err() != nil {
				return err
			}
			if perr := p.deps.Store.Ping(ctx); perr == nil {
				p.log.Warn("store refused a batch while answering pings; writing it chat by chat",
					zap.Int("batch", len(out)), zap.Error(err))
				return lifecycle.Permanent(err)
			}
			return err
		}, func(err error, attempt int, _ time.Duration) {
			if attempt%10 == 1 {
				p.log.Warn("store write failed; retrying without ack", zap.Int("batch", len(out)), zap.Error(err))
			}
			// Keep the messages from being redelivered elsewhere while we retry.
			if time.Since(lastProgress) > p.cfg.AckWait/3 {
				for _, jm := range jms {
					_ = jm.InProgress()
				}
				lastProgress = time.Now()
			}
		})
	if err != nil {
		return false
	}
	ackAll(p.log, jms)
	p.afterWrite(ctx, out) // lifecycle.go
	return true
}

// writeChat writes the messages of one chat and acks them, or parks the chat and
// negatively acks them with its retry delay.
func (p *Persister) writeChat(ctx context.Context, chat string, jms []jetstream.Msg, group []protocol.Message) {
	err := p.deps.Store.AppendMessages(ctx, group)
	now := time.Now()
	if err == nil {
		ackAll(p.log, jms)
		p.afterWrite(ctx, group) // lifecycle.go
		if d, fails, ok := p.parked.resume(chat, now); ok {
			p.log.Info("parked chat resumed: the store takes its messages again", zap.String("chat_id", chat),
				zap.Duration("parked_for", d), zap.Int("failed_writes", fails))
		}
		return
	}
	if ctx.Err() != nil {
		return
	}
	delay, first := p.parked.fail(chat, now)
	if first {
		p.log.Error("store refuses this chat's messages: chat parked, other chats go on; retrying with backoff",
			zap.String("chat_id", chat), zap.Uint64("seq", group[0].Seq), zap.Int("messages", len(group)), zap.Error(err))
	} else {
		p.log.Debug("parked chat still refused", zap.String("chat_id", chat), zap.Duration("retry_in", delay), zap.Error(err))
	}
	for _, jm := range jms {
		_ = jm.NakWithDelay(delay)
	}
}

// ackAll acks each message on its own: with several instances sharing the
// consumer, an ack-all could cover another instance's messages that are not
// stored yet.
func ackAll(log *zap.Logger, jms []jetstream.Msg) {
	for _, jm := range jms {
		if err := jm.Ack(); err != nil {
			log.Debug("ack failed; the message will be redelivered and skipped as stored", zap.Error(err))
		}
	}
}

// ParkedChats returns the number of chats this instance has parked because the
// store refuses their messages (metric natter_persister_parked_chats).
func (p *Persister) ParkedChats() int { return p.parked.count() }

func sleep(ctx context.Context, d time.Duration) { lifecycle.Sleep(ctx, d) }

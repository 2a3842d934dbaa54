// Package presence is the role that keeps who is online. Gateways report their users'
// device counts and send heartbeats on subjects.Heartbeat() (a queue group, so each
// report is handled by one instance); the state lives in the JetStream KV bucket
// "presence" (pkg/presencekv), every write a compare-and-set, so any number of
// instances share the work without double updates. A gateway's lease carries a TTL:
// when its heartbeats stop, the server expires the lease and leaves a marker, which
// one instance (through a shared durable consumer) turns into its users going
// offline. Changes of what others see go out on natter.presence.<uid> as
// presence_update frames.
package presence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Deps are what the presence role needs from the process.
type Deps struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Subjects subjects.Subjects
	// Replicas of the presence bucket (nats.replicas).
	Replicas int
}

// Presence is the presence role.
type Presence struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
	kv   jetstream.KeyValue // set by Run before any handler runs
}

// tombstoneTTL is how long n = 0 device entries are kept, in the bucket and in a
// user's entry, so a report that arrives late (a retried request, a redelivery) can
// still be recognised as stale.
const tombstoneTTL = 10 * time.Minute

// opTimeout bounds the handling of one report or timer.
var opTimeout = 30 * time.Second

// New returns a presence role.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Presence, error) {
	if deps.NC == nil || deps.JS == nil {
		return nil, errors.New("presence: a NATS connection is required")
	}
	return &Presence{cfg: cfg, deps: deps, log: logger.With(zap.String("role", "presence"))}, nil
}

// Run handles reports and expiries until ctx ends.
func (p *Presence) Run(ctx context.Context) error {
	kv, err := presencekv.Ensure(ctx, p.deps.JS, p.deps.Replicas)
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	p.kv = kv
	cons, err := p.deps.JS.CreateOrUpdateConsumer(ctx, presencekv.StreamName, jetstream.ConsumerConfig{
		Durable:        subjects.PresenceConsumer,
		Description:    "presence: gateway lease and grace timer expiries",
		FilterSubjects: []string{presencekv.Subject(presencekv.LeaseKey("*")), presencekv.Subject(presencekv.GraceKey("*"))},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        opTimeout + 5*time.Second,
		MaxDeliver:     -1,
		MaxAckPending:  4 * p.cfg.Workers,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("presence: consumer: %w", err)
	}
	reports := make(chan *nats.Msg, 4096)
	sub, err := p.deps.NC.ChanQueueSubscribe(p.deps.Subjects.Heartbeat(), presencekv.QueueGroup, reports)
	if err != nil {
		return fmt.Errorf("presence: subscribe to reports: %w", err)
	}
	timers := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for i := 0; i < p.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.work(ctx, reports, timers)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.pull(ctx, cons, timers)
	}()
	p.log.Info("presence started", zap.Duration("expiry", p.cfg.Expiry), zap.Duration("grace", p.cfg.Grace))
	<-ctx.Done()
	_ = sub.Unsubscribe()
	wg.Wait()
	return nil
}

// work handles reports and expiries until ctx ends.
func (p *Presence) work(ctx context.Context, reports <-chan *nats.Msg, timers <-chan jetstream.Msg) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-reports:
			p.handleReport(ctx, m)
		case m := <-timers:
			p.handleExpiry(ctx, m)
		}
	}
}

// pull feeds the shared consumer's messages to the workers until ctx ends.
func (p *Presence) pull(ctx context.Context, cons jetstream.Consumer, out chan<- jetstream.Msg) {
	natsutil.Feed(ctx, cons, 2*p.cfg.Workers, out, p.log)
}

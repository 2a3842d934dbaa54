package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
)

// runBaseline publishes, asynchronously and as fast as acks return (at most 4096
// pending), the ingress payload of a --size message to a file-backed stream of its
// own on the NATS server, for --baseline-duration, and returns the acked rate. The
// stream inherits the server's sync policy, so the ratio compares like with like.
// The stream is deleted afterwards.
func runBaseline(ctx context.Context, cfg *Config) (*BaselineResult, error) {
	nc, err := connectNATS(cfg, "natter bench baseline")
	if err != nil {
		return nil, fmt.Errorf("bench: baseline: connect %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	var failed atomic.Int64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return nil, err
	}
	run := newRunID()
	name := "BENCH_BASELINE_" + run
	subj := "bench." + run
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj + ".>"},
		Storage: jetstream.FileStorage, Replicas: 1, MaxBytes: 2 << 30, Discard: jetstream.DiscardOld}); err != nil {
		return nil, fmt.Errorf("bench: baseline: create stream: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, name)
	}()
	// The same payload a gateway stores in NATTER_IN for a --size message.
	m := protocol.Message{ChatID: "dm-baselinebaselinebaselinebaselin", MessageID: messageID(run, 0, 0, time.Now()),
		SenderID: run + "u0", Content: strings.Repeat("x", max(cfg.Size, 1)), MessageType: protocol.TypeText}
	payload := protocol.EncodeIngress(&m)
	dur := cfg.BaselineDuration
	if cfg.Mode == "baseline" {
		dur = cfg.Duration
	}
	fmt.Fprintf(cfg.Stderr, "bench: baseline: async JetStream publishes of %d B for %s\n", len(payload), dur)
	start := time.Now()
	end := start.Add(dur)
	var published int64
	for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
		msg := &nats.Msg{Subject: subj + "." + strconv.Itoa(i%16), Data: payload, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, run+"-"+strconv.Itoa(i))
		if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(30*time.Second)); err != nil {
			return nil, fmt.Errorf("bench: baseline: publish: %w", err)
		}
		published++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("bench: baseline: acks did not arrive")
	}
	secs := time.Since(start).Seconds()
	published -= failed.Load()
	return &BaselineResult{Published: published, PerSec: float64(published) / secs, PayloadSize: len(payload), Seconds: secs}, nil
}

// checkPersisted waits (up to a minute in all) until the shared consumers of the
// persisters and of the notifiers have nothing pending or unacked, and records how
// long each took after sending stopped: a role that kept up during the window
// catches up at once. The notifiers' consumer is checked once the persisters' has
// caught up, so its time is at least theirs. A consumer that does not exist (the
// notifier role not running) is not waited for and not reported.
func (r *runner) checkPersisted(ctx context.Context) {
	nc, err := connectNATS(r.cfg, "natter bench")
	if err != nil {
		r.res.Notes = append(r.res.Notes, "persister check: "+err.Error())
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	deadline := time.Now().Add(time.Minute)
	caughtUp := func(consumer string, missingOK bool) (ok, exists bool) {
		for time.Now().Before(deadline) && ctx.Err() == nil {
			cons, err := js.Consumer(ctx, subjects.LogStream, consumer)
			if errors.Is(err, jetstream.ErrConsumerNotFound) && missingOK {
				return false, false
			}
			if err == nil {
				info, err := cons.Info(ctx)
				if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
					return true, true
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false, true
	}
	ok, _ := caughtUp(subjects.PersisterConsumer, false)
	r.res.Persisted = &ok
	r.res.PersistCatchup = time.Since(r.winEnd).Seconds()
	if ok, exists := caughtUp(subjects.NotifierConsumer, true); exists {
		r.res.Notified = &ok
		r.res.NotifyCatchup = time.Since(r.winEnd).Seconds()
	}
	if c := r.res.CPU; c != nil && r.cpu0 != nil {
		after := r.cpuReport(r.cpu0, r.cpuSample(), 0)
		if after.ServerS > 0 {
			c.CaughtUpS = after.ServerS
		} else {
			c.CaughtUpS = after.CombinedS
		}
	}
}

// connectNATS connects to cfg.NATSURL. With a data directory whose embedded server
// generated credentials (natsutil.CredsDir), it authenticates as the admin user:
// the bench creates and deletes a stream of its own and reads consumer state.
func connectNATS(cfg *Config, name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name)}
	if cfg.DataDir != "" {
		if pw, err := natsutil.ReadPasswordFile(natsutil.PasswordFile(natsutil.CredsDir(cfg.DataDir), natsutil.UserAdmin)); err == nil {
			opts = append(opts, nats.UserInfo(natsutil.UserAdmin, pw))
		}
	}
	return nats.Connect(cfg.NATSURL, opts...)
}

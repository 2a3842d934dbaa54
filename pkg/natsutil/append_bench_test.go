package natsutil

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// BenchmarkLogAppend measures what an append to an R1 file stream with sync=always
// (NATTER_LOG's configuration on one node) costs, per message, by the ways a
// publisher can make k messages durable: one at a time, pipelined single publishes,
// an atomic batch (what the sequencer uses: jetstreamext.PublishMsgBatch) and a
// fast-ingest batch (ADR-50, jetstreamext.FastPublisher). docs/performance.md,
// "Group commit on an R1 file stream", has the figures and what they mean for the
// sequencer. An op is one message; k messages go per group (fewer in the last one
// when b.N is not a multiple of k).
//
//	go test ./pkg/natsutil -run '^$' -bench LogAppend -benchtime 1024x -count 3
func BenchmarkLogAppend(b *testing.B) {
	payload := make([]byte, 300)
	subject := func(j int) string { return fmt.Sprintf("log.%d", j) }
	// Each way appends n messages and returns once all of them are acknowledged.
	ways := []struct {
		name   string
		append func(ctx context.Context, js jetstream.JetStream, n int) error
	}{
		{"acked-one-at-a-time", func(ctx context.Context, js jetstream.JetStream, n int) error {
			for j := range n {
				if _, err := js.Publish(ctx, subject(j), payload); err != nil {
					return err
				}
			}
			return nil
		}},
		{"pipelined", func(_ context.Context, js jetstream.JetStream, n int) error {
			acks := make([]jetstream.PubAckFuture, 0, n)
			for j := range n {
				f, err := js.PublishAsync(subject(j), payload)
				if err != nil {
					return err
				}
				acks = append(acks, f)
			}
			for _, f := range acks {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return err
				}
			}
			return nil
		}},
		{"atomic", func(ctx context.Context, js jetstream.JetStream, n int) error {
			msgs := make([]*nats.Msg, n)
			for j := range msgs {
				// PublishMsgBatch sets the batch headers in Header.
				msgs[j] = &nats.Msg{Subject: subject(j), Data: payload, Header: nats.Header{}}
			}
			_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
			return err
		}},
		{"fast", func(ctx context.Context, js jetstream.JetStream, n int) error {
			fp, err := jetstreamext.NewFastPublisher(js)
			if err != nil {
				return err
			}
			for j := range n - 1 {
				if _, err := fp.Add(subject(j), payload); err != nil {
					return err
				}
			}
			_, err = fp.Commit(ctx, subject(n-1), payload)
			return err
		}},
	}
	for _, k := range []int{1, 16, 64, 256} {
		for _, w := range ways {
			b.Run(fmt.Sprintf("%s/k=%d", w.name, k), func(b *testing.B) {
				js := benchLogStream(b)
				ctx := context.Background()
				defer reportCPU(b)()
				b.ResetTimer()
				for i := 0; i < b.N; i += k {
					if err := w.append(ctx, js, min(k, b.N-i)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// reportCPU starts measuring the process's CPU time (the server and the publisher:
// both are in it) and returns the func that reports it per message, as cpu-µs/msg.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/msg")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLogStream starts a JetStream server with sync=always and creates an R1 file
// stream LOG on log.> that allows both kinds of batch.
func benchLogStream(b *testing.B) jetstream.JetStream {
	b.Helper()
	s := natstest.Server(b, func(o *server.Options) { o.SyncAlways = true })
	js, err := jetstream.New(natstest.Conn(b, s), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "LOG", Subjects: []string{"log.>"}, Storage: jetstream.FileStorage, Replicas: 1,
		AllowAtomicPublish: true, AllowBatchPublish: true,
	}); err != nil {
		b.Fatal(err)
	}
	return js
}

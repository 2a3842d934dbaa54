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
	for _, k := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("acked-one-at-a-time/k=%d", k), func(b *testing.B) {
			js := benchLogStream(b)
			ctx := context.Background()
			defer reportCPU(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i += k {
				for j := 0; j < min(k, b.N-i); j++ {
					if _, err := js.Publish(ctx, fmt.Sprintf("log.%d", j), payload); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("pipelined/k=%d", k), func(b *testing.B) {
			js := benchLogStream(b)
			defer reportCPU(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i += k {
				acks := make([]jetstream.PubAckFuture, 0, k)
				for j := 0; j < min(k, b.N-i); j++ {
					f, err := js.PublishAsync(fmt.Sprintf("log.%d", j), payload)
					if err != nil {
						b.Fatal(err)
					}
					acks = append(acks, f)
				}
				for _, f := range acks {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("atomic/k=%d", k), func(b *testing.B) {
			js := benchLogStream(b)
			ctx := context.Background()
			msgs := make([]*nats.Msg, k)
			for j := range msgs {
				msgs[j] = &nats.Msg{Subject: fmt.Sprintf("log.%d", j), Data: payload}
			}
			defer reportCPU(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i += k {
				for _, m := range msgs {
					m.Header = nats.Header{} // PublishMsgBatch sets the batch headers in it
				}
				if _, err := jetstreamext.PublishMsgBatch(ctx, js, msgs[:min(k, b.N-i)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("fast/k=%d", k), func(b *testing.B) {
			js := benchLogStream(b)
			ctx := context.Background()
			defer reportCPU(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i += k {
				fp, err := jetstreamext.NewFastPublisher(js)
				if err != nil {
					b.Fatal(err)
				}
				n := min(k, b.N-i)
				for j := 0; j < n-1; j++ {
					if _, err := fp.Add(fmt.Sprintf("log.%d", j), payload); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := fp.Commit(ctx, fmt.Sprintf("log.%d", n-1), payload); err != nil {
					b.Fatal(err)
				}
			}
		})
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

// benchLogStream starts a JetStream server with sync=always in b's temporary
// directory and creates an R1 file stream LOG on log.> that allows both kinds of
// batch.
func benchLogStream(b *testing.B) jetstream.JetStream {
	b.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: b.TempDir(), SyncAlways: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server not ready")
	}
	b.Cleanup(s.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
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

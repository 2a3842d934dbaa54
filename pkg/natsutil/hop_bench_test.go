package natsutil

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
)

// BenchmarkHop measures what one message costs to move through the embedded NATS
// server between two in-process connections, the way Natter's roles talk in the
// all-in-one `natter serve`. A 1:1 message makes nine such hops besides its append
// to NATTER_IN (docs/performance.md, "The floor under the CPU per message"), so this
// is the part of the server's CPU per message that no change in Natter's own code
// removes. An op is one message; cpu-µs/msg is the process's CPU (server, publisher
// and subscriber are all in it) per message.
//
//	go test ./pkg/natsutil -run '^$' -bench Hop -benchtime 20000x -count 3
//
// The ways:
//   - core-pipelined: publishes without waiting, one subscriber on another
//     connection (the sequencer's per-user publishes, the answers to gateways);
//   - core-request: a request and its reply, one at a time (a publish that waits for
//     its answer);
//   - memory-stream-pipelined: JetStream publishes to an R1 memory stream, the acks
//     awaited in groups of 64 (the gateway's sends into NATTER_IN).
func BenchmarkHop(b *testing.B) {
	payload := make([]byte, 300)
	b.Run("core-pipelined", func(b *testing.B) {
		got := make(chan struct{})
		var n atomic.Int64
		pub := hopConns(b, func(*nats.Msg) {
			if n.Add(1) == int64(b.N) {
				close(got)
			}
		})
		done := reportCPU(b)
		b.ResetTimer()
		for range b.N {
			if err := pub.Publish("hop", payload); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-got:
		case <-time.After(time.Minute):
			b.Fatalf("%d of %d delivered", n.Load(), b.N)
		}
		b.StopTimer()
		done()
	})
	b.Run("core-request", func(b *testing.B) {
		pub := hopConns(b, func(m *nats.Msg) { _ = m.Respond(payload[:16]) })
		done := reportCPU(b)
		b.ResetTimer()
		for range b.N {
			if _, err := pub.Request("hop", payload, 5*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		done()
	})
	b.Run("memory-stream-pipelined", func(b *testing.B) {
		pub := hopConns(b, nil)
		js, err := jetstream.New(pub, jetstream.WithPublishAsyncMaxPending(1024))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "IN", Subjects: []string{"in.>"}, Storage: jetstream.MemoryStorage, Replicas: 1,
		}); err != nil {
			b.Fatal(err)
		}
		done := reportCPU(b)
		b.ResetTimer()
		for i := 0; i < b.N; i += 64 {
			acks := make([]jetstream.PubAckFuture, 0, 64)
			for j := i; j < min(i+64, b.N); j++ {
				f, err := js.PublishAsync("in.c", payload)
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
		b.StopTimer()
		done()
	})
}

// hopConns starts an in-process JetStream server (memory only is enough) and
// returns an in-process connection to it. With a handler, a second connection
// subscribes it to "hop" before hopConns returns.
func hopConns(b *testing.B, handler nats.MsgHandler) (pub *nats.Conn) {
	b.Helper()
	s := natstest.Server(b)
	if handler != nil {
		sub := natstest.Conn(b, s)
		if _, err := sub.Subscribe("hop", handler); err != nil {
			b.Fatal(err)
		}
		if err := sub.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	return natstest.Conn(b, s)
}

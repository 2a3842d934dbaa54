package transport

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// BenchmarkSubscribeAndFlush is a user's first connection as hub.add makes it: a
// subscription, then a wait until the server has it, from 128 connections at once
// (a reconnect storm with --dial-concurrency 128). "direct" is a FlushTimeout per
// connection, as before; "coalesced" waits through the flusher. flushes/op is the
// round trips per connection.
func BenchmarkSubscribeAndFlush(b *testing.B) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ch := make(chan *nats.Msg, 1)

	var flushes atomic.Int64
	counted := func(d time.Duration) error {
		flushes.Add(1)
		return nc.FlushTimeout(d)
	}
	for _, tc := range []struct {
		name string
		wait func(f *flusher) error
	}{
		{"direct", func(*flusher) error { return counted(5 * time.Second) }},
		{"coalesced", func(f *flusher) error { return f.wait() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFlusher(counted, 5*time.Second)
			var n atomic.Int64
			flushes.Store(0)
			b.SetParallelism(64) // × GOMAXPROCS
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, err := nc.ChanSubscribe("bench.user."+strconv.FormatInt(n.Add(1), 10), ch)
					if err != nil {
						b.Error(err)
						return
					}
					if err := tc.wait(f); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(flushes.Load())/float64(b.N), "flushes/op")
		})
	}
}

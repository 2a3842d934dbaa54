package transport

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// benchHub returns a hub with users connected devices each. The connections' writers
// are marked running, so frames stay queued: the benchmarks measure the gateway's
// delivery path (subject to user, user to connections, enqueue), not socket writes.
func benchHub(users, devices int) (*Hub, []*Conn) {
	out := &Out{queue: 1 << 30, slow: new(atomic.Int64)}
	h := NewHub(nil, "natter.user.", 2, zap.NewNop())
	var conns []*Conn
	for u := 0; u < users; u++ {
		uid := fmt.Sprintf("user-%d", u)
		e := &userEntry{}
		for d := 0; d < devices; d++ {
			c := &Conn{out: out, user: uid, writing: true}
			e.conns = append(e.conns, c)
			conns = append(conns, c)
		}
		h.users[uid] = e
	}
	return h, conns
}

func drainQueues(conns []*Conn) {
	for _, c := range conns {
		c.mu.Lock()
		clear(c.queue)
		c.queue = c.queue[:0]
		c.mu.Unlock()
	}
}

var benchFrame = protocol.EncodeMessageFrame(&protocol.Message{ChatID: "dm-0123456789abcdefghjkmnpqrs", Seq: 1,
	MessageID: "b1x2y3-1a-2b-3c4d5e6f7g", SenderID: "user-1", Content: strings.Repeat("x", 100), MessageType: protocol.TypeText, Timestamp: 1})

// BenchmarkHubDeliver is one user delivery (a message on natter.user.<uid>) to a
// user's connected devices. Run with go test -bench Hub -benchmem ./gateway/transport/
func BenchmarkHubDeliver(b *testing.B) {
	for _, devices := range []int{1, 3} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			h, conns := benchHub(1000, devices)
			msgs := make([]*nats.Msg, 1000)
			for i := range msgs {
				msgs[i] = &nats.Msg{Subject: fmt.Sprintf("natter.user.user-%d", i), Data: benchFrame}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.deliver(msgs[i%len(msgs)])
				if i++; i%4096 == 0 {
					drainQueues(conns)
				}
			}
		})
	}
}

// BenchmarkHubFanout delivers one message to every member of a chat of n users on
// this gateway, the way per-user fan-out reaches it (one NATS message per member).
// ns/op is per chat message; ns/delivery is per member.
func BenchmarkHubFanout(b *testing.B) {
	for _, n := range []int{2, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			h, conns := benchHub(n, 1)
			msgs := make([]*nats.Msg, n)
			for i := range msgs {
				msgs[i] = &nats.Msg{Subject: fmt.Sprintf("natter.user.user-%d", i), Data: benchFrame}
			}
			b.ReportAllocs()
			k := 0
			for b.Loop() {
				for _, m := range msgs {
					h.deliver(m)
				}
				if k++; k%256 == 0 {
					drainQueues(conns)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

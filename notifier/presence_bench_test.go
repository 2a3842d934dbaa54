package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/presencekv"
	"go.uber.org/zap"
)

// BenchmarkPresenceFanout compares, for one message to a chat whose 10,000 members
// are all connected, the presence view (a barrier, then a map lookup per member)
// with what it replaced: a KV Get per member, 16 at a time. Run with
// go test -run '^$' -bench PresenceFanout -benchmem ./notifier/
func BenchmarkPresenceFanout(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js := jetStream(b)
	kv, err := presencekv.Ensure(ctx, js, 1)
	if err != nil {
		b.Fatal(err)
	}
	stream, err := js.Stream(ctx, presencekv.StreamName)
	if err != nil {
		b.Fatal(err)
	}
	const members = 10_000
	uids := make([]string, members)
	val, _ := json.Marshal(presencekv.User{Gateways: map[string]presencekv.GatewayDevices{"gw1": {N: 1}}})
	for i := range uids {
		uids[i] = fmt.Sprintf("user-%d", i)
		if _, err := kv.Put(ctx, presencekv.UserKey(uids[i]), val); err != nil {
			b.Fatal(err)
		}
	}
	v := newPresenceView(ctx, kv, stream, zap.NewNop())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); v.run(ctx) }()
	defer wg.Wait()
	defer cancel()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, ok := v.anyOnline(nil, ""); ok {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("view not loaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := &Notifier{presence: kv, view: v, log: zap.NewNop()}

	b.Run("view", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if off, check := n.recipients(ctx, uids, "user-0"); len(off) != 0 || check {
				b.Fatalf("%d offline, check %v", len(off), check)
			}
		}
	})
	b.Run("gets", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sem := make(chan struct{}, recipientParallel)
			var wg sync.WaitGroup
			for _, uid := range uids[1:] {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					if on, err := n.connected(ctx, uid); err != nil || !on {
						b.Errorf("%s: %v %v", uid, on, err)
					}
				}()
			}
			wg.Wait()
		}
	})
}

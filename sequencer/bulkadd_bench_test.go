package sequencer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sequencer"
	"go.uber.org/zap"
)

// BenchmarkBulkAddToLargeChat measures the sequencer step of one members_added
// event of protocol.MaxBulkMembers new users into a large chat, as natter bench's
// largegroup mode builds its group: the store write of the members, the log
// append and the copies to the added users' subjects. "nobody connected" has no
// subscriber on those subjects (the bench's create); "all connected" has one
// that reads every copy, as the gateways of connected users do. user-B/op is the
// bytes published on user subjects per added user. Run with
// go test ./sequencer -run XXX -bench BulkAddToLargeChat -benchtime 20x
func BenchmarkBulkAddToLargeChat(b *testing.B) {
	for _, connected := range []bool{false, true} {
		name := "nobody connected"
		if connected {
			name = "all connected"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoSigs: true})
			if err != nil {
				b.Fatal(err)
			}
			go ns.Start()
			defer ns.Shutdown()
			if !ns.ReadyForConnections(10 * time.Second) {
				b.Fatal("nats not ready")
			}
			nc, err := nats.Connect(ns.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ncfg := natsutil.DefaultConfig()
			ncfg.Partitions = 1
			if err := natsutil.EnsureStreams(ctx, js, &ncfg); err != nil {
				b.Fatal(err)
			}
			st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if _, _, err := st.CreateChat(ctx, store.Chat{ID: "c1", Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: time.Now()},
				[]store.Member{{ChatID: "c1", UserID: "alice", Role: store.RoleAdmin}}); err != nil {
				b.Fatal(err)
			}
			subj := ncfg.Subjects()
			var userBytes atomic.Int64
			if connected {
				rc, err := nats.Connect(ns.ClientURL())
				if err != nil {
					b.Fatal(err)
				}
				defer rc.Close()
				sub, err := rc.Subscribe(subj.User("*"), func(m *nats.Msg) { userBytes.Add(int64(len(m.Data))) })
				if err != nil {
					b.Fatal(err)
				}
				_ = sub.SetPendingLimits(-1, -1)
				_ = rc.Flush()
			}
			users := make([]string, protocol.MaxBulkMembers)
			for i := 0; i < b.N; i++ {
				for j := range users {
					users[j] = fmt.Sprintf("user%07d", i*len(users)+j)
				}
				meta, _ := json.Marshal(protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: users, By: "alice"})
				m := &protocol.Message{ChatID: "c1", MessageID: fmt.Sprintf("add%d", i), SenderID: "alice", MessageType: protocol.TypeSystem, Meta: meta}
				msg := &nats.Msg{Subject: subj.In("c1"), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
				msg.Header.Set(jetstream.MsgIDHeader, "c1:"+m.MessageID)
				msg.Header.Set(protocol.HeaderChange, "1")
				if _, err := js.PublishMsg(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
			var cfg sequencer.Config
			cfg.MaxChats, cfg.LargeChatThreshold, cfg.PinnedTTL, cfg.Fetch, cfg.BatchMin = 1000, 1000, 5*time.Second, 64, 16
			s, err := sequencer.New(cfg, sequencer.Deps{NC: nc, JS: js, Store: st, Subjects: subj}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = s.Run(rctx) }()
			for {
				if n, _, _ := s.Stats(); n >= uint64(b.N) {
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
			_ = nc.Flush()
			b.StopTimer()
			if connected {
				b.ReportMetric(float64(userBytes.Load())/float64(b.N*len(users)), "user-B/op")
			}
			cancel()
			<-done
		})
	}
}

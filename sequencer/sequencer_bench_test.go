package sequencer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
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

// BenchmarkSequencerThroughput measures the sequencer step end to end on an
// in-process JetStream: b.N ingress messages over 100 1:1 chats are stored first,
// then the timer runs while one sequencer (4 partitions) checks membership, appends
// to NATTER_LOG (fenced; one atomic batch per partition drain, batch.go) and fans
// out to both members.
// "sync=always" fsyncs every JetStream write (the embedded default); "sync=2m" is
// the NATS server default; "one-at-a-time" is sync=2m with sequencer.batch-min 0,
// the path every drain under batch-min takes (moderate load). Run with
// go test -bench SequencerThroughput -benchmem -benchtime 5000x ./sequencer/
func BenchmarkSequencerThroughput(b *testing.B) {
	for _, bc := range []struct {
		name     string
		always   bool
		batchMin int
	}{{"sync=always", true, 16}, {"sync=2m", false, 16}, {"one-at-a-time", false, 0}} {
		always := bc.always
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoSigs: true, SyncAlways: always}
			ns, err := server.NewServer(opts)
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
			js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
			ncfg := natsutil.DefaultConfig()
			ncfg.Partitions = 4
			if err := natsutil.EnsureStreams(ctx, js, &ncfg); err != nil {
				b.Fatal(err)
			}
			st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			const chats = 100
			for c := 0; c < chats; c++ {
				id := fmt.Sprintf("c%d", c)
				if _, _, err := st.CreateChat(ctx, store.Chat{ID: id, Kind: store.KindGroup, CreatedBy: "alice", CreatedAt: time.Now()},
					[]store.Member{{ChatID: id, UserID: "alice", Role: store.RoleAdmin}, {ChatID: id, UserID: "bob", Role: store.RoleMember}}); err != nil {
					b.Fatal(err)
				}
			}
			subj := ncfg.Subjects()
			content := strings.Repeat("x", 100)
			for i := 0; i < b.N; i++ {
				chat := fmt.Sprintf("c%d", i%chats)
				m := &protocol.Message{ChatID: chat, MessageID: fmt.Sprintf("m%d", i), SenderID: "alice", Content: content, MessageType: protocol.TypeText}
				msg := &nats.Msg{Subject: subj.In(chat), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
				msg.Header.Set(jetstream.MsgIDHeader, chat+":"+m.MessageID)
				if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
			<-js.PublishAsyncComplete()
			var cfg sequencer.Config
			cfg.MaxChats, cfg.LargeChatThreshold, cfg.PinnedTTL, cfg.Fetch, cfg.BatchMin = 100_000, 1000, 5*time.Second, 512, bc.batchMin
			s, err := sequencer.New(cfg, sequencer.Deps{NC: nc, JS: js, Store: st, Subjects: subj}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
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
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if batches, batched, _ := s.BatchStats(); batches > 0 {
				b.ReportMetric(float64(batched)/float64(batches), "msgs/batch")
			}
			cancel()
			<-done
		})
	}
}

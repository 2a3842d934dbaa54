package natsutil

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natstest"
)

// BenchmarkLogGet measures what a read of one log message costs, through the
// JetStream API ($JS.API.STREAM.MSG.GET: a JSON request and answer, the message
// base64 in it, served by the server's API workers) and as a direct get
// ($JS.API.DIRECT.GET: the stored message as it is, served by the stream), the two
// ways a client reads NATTER_LOG (direct on one replica: LogStreamConfig). The
// stream holds 10,000 messages of 300 bytes on 1,000 subjects; the reads are the
// ones history and the notifier make: a chat's newest message, and the first one of
// a chat at or after a stream seq. cpu-µs/msg is the process's CPU per read, the
// server's and the client's (both are in it).
//
//	go test ./pkg/natsutil -run '^$' -bench LogGet -benchtime 20000x -count 3
func BenchmarkLogGet(b *testing.B) {
	reads := []struct {
		name string
		read func(ctx context.Context, st jetstream.Stream, i int) error
	}{
		{"last-for-subject", func(ctx context.Context, st jetstream.Stream, i int) error {
			_, err := st.GetLastMsgForSubject(ctx, fmt.Sprintf("log.%d", i%1000))
			return err
		}},
		{"next-for-subject", func(ctx context.Context, st jetstream.Stream, i int) error {
			_, err := st.GetMsg(ctx, uint64(1+i%9000), jetstream.WithGetMsgSubject(fmt.Sprintf("log.%d", i%1000)))
			return err
		}},
	}
	for _, r := range reads {
		for _, direct := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/direct=%v", r.name, direct), func(b *testing.B) {
				s := natstest.Server(b, func(o *server.Options) { o.SyncAlways = true })
				js, err := jetstream.New(natstest.Conn(b, s))
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOG", Subjects: []string{"log.>"},
					Storage: jetstream.FileStorage, Replicas: 1, AllowDirect: direct})
				if err != nil {
					b.Fatal(err)
				}
				payload := make([]byte, 300)
				for i := range 10000 {
					if _, err := js.PublishAsync(fmt.Sprintf("log.%d", i%1000), payload); err != nil {
						b.Fatal(err)
					}
					if i%500 == 499 {
						<-js.PublishAsyncComplete()
					}
				}
				defer reportCPU(b)()
				b.ResetTimer()
				for i := range b.N {
					if err := r.read(ctx, st, i); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

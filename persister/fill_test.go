package persister_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestTrickleDoesNotHoldABatch: messages arriving steadily, each well within
// MaxWait of the one before, never fill a batch of Batch. The batch is written
// once it has filled for its bound (a quarter of the ack wait here), while the
// trickle goes on, not when the trickle ends or the server redelivers it.
func TestTrickleDoesNotHoldABatch(t *testing.T) {
	e := newLogEnv(t, time.Hour)
	cfg := persister.Config{Batch: persister.DefaultBatch, MaxWait: 200 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		AckWait: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Uint64
	done := make(chan struct{})
	go func() { // one message every 10 ms for up to 10 s
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := uint64(1); i <= 1000; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			m := protocol.Message{ChatID: "trickle", Seq: i, MessageID: fmt.Sprint("trickle-", i), SenderID: "u",
				Content: "x", MessageType: protocol.TypeText, Timestamp: time.Now().UnixMilli()}
			if _, err := e.js.Publish(ctx, e.subj.Log("trickle"), protocol.EncodeMessageFrame(&m)); err != nil {
				return
			}
			sent.Store(i)
		}
	}()
	defer func() { cancel(); <-done }()
	e.runWith(t, cfg, zap.NewNop())

	require.Eventually(t, func() bool { return e.lastSeq("trickle") > 0 }, 5*time.Second, 20*time.Millisecond,
		"the first batch is written while messages keep coming")
	require.Less(t, sent.Load(), uint64(1000), "the trickle was still going when the first batch was written")
}

package persister

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Retention and deletion work of the persister (docs/privacy.md).
//
// Sweeping: a store without native expiry (SQLite) keeps expired rows until
// SweepExpired removes them; reads hide them meanwhile. Every persister sweeps about
// once a SweepInterval, SweepBatch rows per store call, so the one SQLite writer is
// held for one small transaction at a time and the persister's own writes go in
// between.
//
// Chat deletion: the sequencer erases a chat from the store when it sequences its
// chat_deleted event. The persister then stores that event like any other, and
// whatever of the chat a lagging instance stored after the erasure: so once it has
// stored the event it erases the chat again, and purges the chat's messages from
// NATTER_LOG, which would otherwise keep them until they age out.

// SweepInterval is how often a persister sweeps expired messages; SweepBatch the
// most it removes per store call. Tests shorten the interval.
var (
	SweepInterval = 10 * time.Second
	SweepBatch    = 1000
)

// sweepLoop sweeps expired messages every SweepInterval until ctx ends.
func (p *Persister) sweepLoop(ctx context.Context) {
	failing := false
	for {
		sleep(ctx, SweepInterval)
		if ctx.Err() != nil {
			return
		}
		total := 0
		for ctx.Err() == nil {
			n, err := p.deps.Store.SweepExpired(ctx, time.Now(), SweepBatch)
			if err != nil {
				if !failing && ctx.Err() == nil {
					p.log.Warn("sweep of expired messages failed; retrying every interval (reads hide them meanwhile)", zap.Error(err))
				}
				failing = true
				break
			}
			failing = false
			total += n
			if n < SweepBatch {
				break
			}
		}
		if total > 0 {
			p.log.Debug("expired messages swept", zap.Int("messages", total))
		}
	}
}

// afterWrite erases the chats whose chat_deleted event msgs (just stored) hold.
// A failure is logged: the sequencer erased the chat already, so what remains is
// at most what was stored since; the next deletion of the chat erases it.
func (p *Persister) afterWrite(ctx context.Context, msgs []protocol.Message) {
	for i := range msgs {
		m := &msgs[i]
		if m.MessageType != protocol.TypeSystem || protocol.ChatChangeIn(m.Meta) != protocol.EventChatDeleted {
			continue
		}
		var ev protocol.SystemEvent
		_ = json.Unmarshal(m.Meta, &ev)
		if err := p.deps.Store.DeleteChat(ctx, m.ChatID); err != nil {
			p.log.Error("erasing a deleted chat failed", zap.String("chat_id", m.ChatID), zap.Error(err))
			continue
		}
		st, err := p.deps.JS.Stream(ctx, subjects.LogStream)
		if err == nil {
			err = st.Purge(ctx, jetstream.WithPurgeSubject(p.deps.Subjects.Log(m.ChatID)))
		}
		if err != nil {
			p.log.Warn("purging a deleted chat from the log failed; its messages age out with the log",
				zap.String("chat_id", m.ChatID), zap.Error(err))
			continue
		}
		p.log.Info("deleted chat erased from the store and the log", zap.String("chat_id", m.ChatID), zap.String("by", ev.By))
	}
}

package sequencer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Retention (docs/privacy.md): the sequencer decides when each message expires, as
// it sequences it, from the chat's message TTL (changed only by a sequenced
// message_ttl_changed event, so the change applies in chat order) and the server's
// retention (Config.Retention). Everything downstream (stores, history, search,
// push, clients) only reads Message.ExpiresAt.

// stamp sets m's timestamp (now) and its expiry for a chat whose state is st.
func (s *Sequencer) stamp(st *chatState, m *protocol.Message) {
	m.Timestamp = time.Now().UnixMilli()
	m.ExpiresAt = 0
	life := s.cfg.Retention
	if ttl := time.Duration(st.ttl) * time.Second; ttl > 0 && (life == 0 || ttl < life) {
		life = ttl
	}
	if life > 0 {
		m.ExpiresAt = m.Timestamp + life.Milliseconds()
	}
}

// applyLifecycle writes a message TTL change or a chat deletion to the store before
// its event is in the log (as applyMembership does for members). Both are
// idempotent.
func (s *Sequencer) applyLifecycle(ctx context.Context, chat string, ev *protocol.SystemEvent) error {
	var err error
	switch ev.Event {
	case protocol.EventMessageTTLChanged:
		err = s.deps.Store.SetMessageTTL(ctx, chat, max(ev.MessageTTL, 0))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
	case protocol.EventChatDeleted:
		err = s.deps.Store.DeleteChat(ctx, chat)
		if err == nil {
			s.log.Info("chat deleted", zap.String("chat_id", chat), zap.String("by", ev.By))
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", ev.Event, chat, err)
	}
	return nil
}

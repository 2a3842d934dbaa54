package sequencer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// verdict is the sequencer's decision on a message that references another.
type verdict int

const (
	accept verdict = iota
	refuse         // tell the sender why (the error) and do not sequence
	drop           // do not sequence, say nothing: it would change nothing
)

// authorizeRefs decides on m's references to earlier messages of its chat, in chat
// order, so the decision is the same for everyone:
//   - an edit, delete or react must reference a message of the chat that exists;
//     protocol.AuthorizeOperation has the rest of the rules (who edits and deletes
//     what; a reaction that changes nothing is dropped, so each sequenced react
//     event changes a count by one);
//   - a reply (ReplyTo) must reference a message of the chat that is not an
//     operation or system message.
//
// The referenced message is read through the history reader (the store merged with
// the NATTER_LOG tail), so a message sequenced a moment ago and not yet persisted is
// found: the client had its ack before sending the operation, and the partition is
// sequenced in ingress order. When that read fails (store down), an operation is
// refused with unavailable rather than stalling the partition, and a reply is
// accepted unchecked.
func (s *Sequencer) authorizeRefs(ctx context.Context, st *chatState, m *protocol.Message, service bool) (verdict, *protocol.Error) {
	if protocol.IsOperation(m.MessageType) {
		return s.authorizeOp(ctx, st, m, service)
	}
	if m.ReplyTo == "" {
		return accept, nil
	}
	ref, err := s.hist.Message(ctx, m.ChatID, m.ReplyTo, "")
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse, protocol.Errorf(protocol.CodeNotFound, "replyTo %s: no such message in chat %s", m.ReplyTo, m.ChatID)
	case err != nil:
		s.log.Warn("reply target lookup failed; accepting the reply unchecked",
			zap.String("chat_id", m.ChatID), zap.String("message_id", m.ReplyTo), zap.Error(err))
		return accept, nil
	case !protocol.Referable(ref.MessageType):
		return refuse, protocol.Errorf(protocol.CodeBadRequest, "replyTo %s is a %s message", m.ReplyTo, ref.MessageType)
	}
	return accept, nil
}

func (s *Sequencer) authorizeOp(ctx context.Context, st *chatState, m *protocol.Message, service bool) (verdict, *protocol.Error) {
	ref, err := s.hist.Message(ctx, m.ChatID, m.RefID, m.SenderID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse, protocol.Errorf(protocol.CodeNotFound, "refId %s: no such message in chat %s", m.RefID, m.ChatID)
	case err != nil:
		s.log.Warn("operation target lookup failed; refusing the operation",
			zap.String("chat_id", m.ChatID), zap.String("message_id", m.RefID), zap.Error(err))
		return refuse, protocol.Errorf(protocol.CodeUnavailable, "could not check message %s; send the %s again with a new messageId", m.RefID, m.MessageType)
	}
	noop, perr := protocol.AuthorizeOperation(m, &ref, st.members[m.SenderID] == store.RoleAdmin, service)
	switch {
	case perr != nil:
		return refuse, perr
	case noop:
		return drop, nil
	}
	return accept, nil
}

// applyMembership writes a sequenced system event's membership or name change to
// the store, before the event is appended to the log: the store then never lags the
// log, so a cold chat's members loaded from it (here or by another sequencer after
// a takeover) and the gateways' membership checks agree with the conversation. Every
// write is idempotent, so a retried or re-sequenced event is harmless.
func (s *Sequencer) applyMembership(ctx context.Context, chat string, st *chatState, ev *protocol.SystemEvent, at time.Time) error {
	switch ev.Event {
	case protocol.EventMessageTTLChanged, protocol.EventChatDeleted:
		return s.applyLifecycle(ctx, chat, ev) // retention.go
	}
	if ev.Event == protocol.EventChatRenamed {
		err := s.deps.Store.RenameChat(ctx, chat, ev.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case errors.Is(err, store.ErrNotSupported):
			s.log.Warn("the store cannot rename chats", zap.String("chat_id", chat))
			return nil
		case err != nil:
			return fmt.Errorf("rename %s: %w", chat, err)
		}
		return nil
	}
	if protocol.IsBulkChange(ev.Event) {
		return s.applyBulkMembership(ctx, chat, ev, at) // members.go
	}
	if !ids.Valid(ev.UserID) {
		return nil
	}
	var err error
	switch ev.Event {
	case protocol.EventMemberAdded:
		err = s.deps.Store.AddMember(ctx, store.Member{ChatID: chat, UserID: ev.UserID, Role: roleOf(ev), JoinedAt: at.UTC()})
	case protocol.EventRoleChanged:
		if _, ok := st.members[ev.UserID]; ok {
			err = s.deps.Store.AddMember(ctx, store.Member{ChatID: chat, UserID: ev.UserID, Role: roleOf(ev), JoinedAt: at.UTC()})
		}
	case protocol.EventMemberRemoved, protocol.EventMemberLeft:
		err = s.deps.Store.RemoveMember(ctx, chat, ev.UserID)
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", ev.Event, chat, ev.UserID, err)
	}
	return nil
}

// roleOf is the role a member_added or role_changed event gives.
func roleOf(ev *protocol.SystemEvent) string {
	if ev.Role == store.RoleAdmin {
		return store.RoleAdmin
	}
	return store.RoleMember
}

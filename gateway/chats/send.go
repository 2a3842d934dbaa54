package chats

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Sending over REST: POST /api/v1/chats/{id}/messages, as the caller (a member),
// or, with a service token, as the system or a named bot user without membership.
// The message takes the path of a send frame: the same validation, the same early
// refusals (blocks, encryption, media shares), then NATTER_IN and the sequencer's
// answer.

// Sends stores a message in NATTER_IN and waits for the sequencer's answer (the
// gateway's ingress and answer waiter).
type Sends interface {
	// PublishAndWait publishes m, as a service's post when service is set, and
	// returns the sequencer's ack: seq is the message's place in the chat, the
	// original one for a resend (duplicate). A refusal is its *protocol.Error; no
	// answer in time is unavailable.
	PublishAndWait(ctx context.Context, m *protocol.Message, service bool) (seq uint64, duplicate bool, err error)
}

// SendRules refuse early, for a synchronous answer, what the sequencer would
// refuse.
type SendRules interface {
	// CheckDirectSend refuses a message of sender into a direct chat whose other
	// member blocks them (blocked).
	CheckDirectSend(ctx context.Context, chat, sender, messageType string) error
	// CheckType refuses messageType in chat by its encryption.
	CheckType(ctx context.Context, chat, messageType string) error
}

// Media shares the uploads a message names with the chat (media.Service.Share).
type Media interface {
	Share(ctx context.Context, uploader string, m *protocol.Message) error
}

// postRequest is the body of POST /api/v1/chats/{id}/messages.
type postRequest struct {
	MessageID   string          `json:"messageId"`
	Content     string          `json:"content"`
	MessageType string          `json:"messageType"`
	ReplyTo     string          `json:"replyTo"`
	Meta        json.RawMessage `json:"meta"`
	// SenderID lets a service post as a bot or system user; others must omit it.
	SenderID string `json:"senderId"`
}

// Post is POST /api/v1/chats/{id}/messages: 202 with the message's seq once the
// sequencer has decided.
func (s *Service) Post(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := protocol.ValidID("chat", chat); err != nil {
		s.fail(w, err)
		return
	}
	var req postRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.deps.Limits.TakePost(id.UserID, id.Service); err != nil {
		s.fail(w, err)
		return
	}
	if req.MessageID == "" {
		req.MessageID = ids.New()
	}
	sender := id.UserID
	if req.SenderID != "" {
		if !id.Service {
			s.fail(w, protocol.Errorf(protocol.CodeForbidden, "only service tokens may set senderId"))
			return
		}
		if err := protocol.ValidID("user", req.SenderID); err != nil {
			s.fail(w, err)
			return
		}
		sender = req.SenderID
	}
	// Services may post system messages: the rest is validated as for any message.
	system := req.MessageType == protocol.TypeSystem && id.Service
	if system {
		req.MessageType = ""
	}
	f := &protocol.Frame{ChatID: chat, MessageID: req.MessageID, Content: req.Content,
		MessageType: req.MessageType, ReplyTo: req.ReplyTo, Meta: req.Meta}
	m, err := protocol.MessageFromSend(sender, f)
	if err != nil {
		s.fail(w, err)
		return
	}
	if system {
		m.MessageType = protocol.TypeSystem
		if ev := protocol.ChatChangeIn(m.Meta); ev != "" {
			// Chat changes are made by the chat API, which checks the caller's right
			// and stamps by; a posted member_added would name any by it liked.
			s.fail(w, protocol.Errorf(protocol.CodeForbidden,
				"%s is a chat change: use the chat API (POST /api/v1/chats/{id}/members, DELETE .../members/{uid}, PATCH /api/v1/chats/{id}) as a chat admin or with the %s scope", ev, protocol.ScopeChatsAdmin))
			return
		}
	}
	if !id.Service {
		if err := s.deps.Members.IsMember(r.Context(), chat, id.UserID); err != nil {
			s.fail(w, err)
			return
		}
	} else if _, err := s.deps.Store.GetChat(r.Context(), chat); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.fail(w, protocol.Errorf(protocol.CodeNotFound, "no chat %s", chat))
			return
		}
		s.fail(w, err)
		return
	}
	if err := s.deps.Rules.CheckDirectSend(r.Context(), chat, sender, m.MessageType); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.deps.Rules.CheckType(r.Context(), chat, m.MessageType); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.deps.Media.Share(r.Context(), id.UserID, m); err != nil {
		s.fail(w, err)
		return
	}
	// Answered once the sequencer decided: seq is the message's place in the chat,
	// the original one for a resend (duplicate). 202 as before the answer carried
	// a seq, so clients written then keep working.
	seq, dup, err := s.deps.Sends.PublishAndWait(r.Context(), m, id.Service)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]any{"chatId": chat, "messageId": m.MessageID, "seq": seq, "duplicate": dup})
}

package chats

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Changes to a group: the rights check every change makes (AdminOf) and renaming
// it (PATCH /api/v1/chats/{id}). A change is a system event sequenced into the
// chat (the gateway's chats.go says how); Changes publishes it.

// MaxName is the longest chat name, in bytes.
const MaxName = 128

// Changes publishes a membership or name change as a system message of chat sent
// by actor and waits until it is sequenced, at most gateway.publish-timeout (the
// gateway's announce). Seq is 0 in the answer if it was stored in NATTER_IN but
// not sequenced in that time: it will be. An error means nothing changed.
type Changes interface {
	Announce(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatchange.Answer, error)
}

// AdminOf is MemberOf for a change to a chat: it must be a group (a direct chat
// is a conflict) and id its admin. A service token with the chats:admin scope
// administers every group.
func AdminOf(ctx context.Context, members Members, st ChatGetter, chat string, id auth.Identity) (store.Chat, error) {
	if id.ChatAdmin {
		if err := protocol.ValidID("chat", chat); err != nil {
			return store.Chat{}, err
		}
		c, err := st.GetChat(ctx, chat)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return c, protocol.Errorf(protocol.CodeNotFound, "no chat %s", chat)
		case err != nil:
			return c, httpx.StoreUnavailable(err)
		case c.Kind != store.KindGroup:
			return c, protocol.Errorf(protocol.CodeConflict, "a direct chat's members and name cannot change")
		}
		return c, nil
	}
	c, mb, err := MemberOf(ctx, members, st, chat, id.UserID)
	if err != nil {
		return c, err
	}
	if c.Kind != store.KindGroup {
		return c, protocol.Errorf(protocol.CodeConflict, "a direct chat's members and name cannot change")
	}
	if mb.Role != store.RoleAdmin {
		return c, protocol.Errorf(protocol.CodeForbidden, "only an admin of chat %s may do that", chat)
	}
	return c, nil
}

// renameRequest is the body of PATCH /api/v1/chats/{id}.
type renameRequest struct {
	Name *string `json:"name"`
}

// Rename is PATCH /api/v1/chats/{id} {"name"}: rename a group (its admins). An
// empty name clears it; the same name answers 200 without an event.
func (s *Service) Rename(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	var req renameRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Name == nil {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "name is required (an empty name clears it)"))
		return
	}
	name, err := CleanName(*req.Name)
	if err != nil {
		s.fail(w, err)
		return
	}
	c, err := AdminOf(ctx, s.deps.Members, s.deps.Store, chat, id)
	if err != nil {
		s.fail(w, err)
		return
	}
	if c.Name == name {
		httpx.WriteJSON(w, http.StatusOK, chatchange.Answer{ChatID: chat, Name: &name})
		return
	}
	ch, err := s.deps.Changes.Announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventChatRenamed, Name: name, By: id.UserID})
	if err != nil {
		s.fail(w, err)
		return
	}
	ch.Name = &name
	chatchange.Write(w, http.StatusOK, ch)
}

// CleanName trims name and checks it: at most MaxName bytes of UTF-8 with no
// control or format characters (which could disguise it).
func CleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if len(name) > MaxName {
		return "", protocol.Errorf(protocol.CodeTooLarge, "name over %d bytes", MaxName)
	}
	if !utf8.ValidString(name) {
		return "", protocol.Errorf(protocol.CodeBadRequest, "name must be UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", protocol.Errorf(protocol.CodeBadRequest, "name must not contain control characters")
		}
	}
	return name, nil
}

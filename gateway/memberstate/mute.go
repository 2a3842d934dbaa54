package memberstate

import (
	"net/http"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// MaxMuteFor caps how far ahead a timed mute may end; longer is "until unmuted".
const MaxMuteFor = 10 * 365 * 24 * time.Hour

// muteRequest is the body of PUT /api/v1/chats/{id}/mute.
type muteRequest struct {
	// Muted silences (true) or restores (false) push notifications for the chat.
	Muted *bool `json:"muted"`
	// Until, an RFC 3339 time in the future, ends a mute by itself; omitted or null:
	// until unmuted. Only with muted true.
	Until *time.Time `json:"until"`
}

// muteBody is the answer of GET and PUT /api/v1/chats/{id}/mute.
type muteBody struct {
	ChatID string     `json:"chatId"`
	Muted  bool       `json:"muted"`
	Until  *time.Time `json:"until,omitempty"`
}

func muteView(m store.Mute, now time.Time) muteBody {
	b := muteBody{ChatID: m.ChatID, Muted: m.Active(now)}
	if b.Muted && !m.Until.IsZero() {
		u := m.Until.UTC()
		b.Until = &u
	}
	return b
}

// PutMute serves PUT /api/v1/chats/{id}/mute: the caller (a member) mutes or unmutes
// the chat's notifications for themself.
func (s *Service) PutMute(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := s.access(r.Context(), chat, id.UserID); err != nil {
		s.fail(w, err)
		return
	}
	var req muteRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Muted == nil {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "muted (true or false) is required"))
		return
	}
	now := time.Now()
	m := store.Mute{ChatID: chat, UserID: id.UserID, Muted: *req.Muted}
	if req.Until != nil {
		switch {
		case !m.Muted:
			s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "until goes with muted true"))
			return
		case !req.Until.After(now):
			s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "until must be in the future"))
			return
		case req.Until.Sub(now) < MaxMuteFor:
			m.Until = req.Until.UTC().Truncate(time.Millisecond)
		}
	}
	if err := s.deps.Store.SetMute(r.Context(), m); err != nil {
		s.fail(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, muteView(m, now))
}

// Mute serves GET /api/v1/chats/{id}/mute: the caller's mute of the chat.
func (s *Service) Mute(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := s.access(r.Context(), chat, id.UserID); err != nil {
		s.fail(w, err)
		return
	}
	m, err := s.deps.Store.GetMute(r.Context(), chat, id.UserID)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, muteView(m, time.Now()))
}

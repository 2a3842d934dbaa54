package gateway

import (
	"net/http"
	"time"

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

// putMute serves PUT /api/v1/chats/{id}/mute: the caller (a member) mutes or unmutes
// the chat's notifications for themself.
func (g *Gateway) putMute(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := g.chatAccess(r.Context(), chat, id.UserID); err != nil {
		g.fail(w, err)
		return
	}
	var req muteRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	if req.Muted == nil {
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "muted (true or false) is required"))
		return
	}
	now := time.Now()
	m := store.Mute{ChatID: chat, UserID: id.UserID, Muted: *req.Muted}
	if req.Until != nil {
		switch {
		case !m.Muted:
			g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "until goes with muted true"))
			return
		case !req.Until.After(now):
			g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "until must be in the future"))
			return
		case req.Until.Sub(now) < MaxMuteFor:
			m.Until = req.Until.UTC().Truncate(time.Millisecond)
		}
	}
	if err := g.deps.Store.SetMute(r.Context(), m); err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, muteView(m, now))
}

// getMute serves GET /api/v1/chats/{id}/mute: the caller's mute of the chat.
func (g *Gateway) getMute(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	chat := r.PathValue("id")
	if err := g.chatAccess(r.Context(), chat, id.UserID); err != nil {
		g.fail(w, err)
		return
	}
	m, err := g.deps.Store.GetMute(r.Context(), chat, id.UserID)
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, muteView(m, time.Now()))
}

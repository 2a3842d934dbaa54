package livestate

import (
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// presenceBody is the body of GET/PUT /api/v1/users/{id}/presence.
type presenceBody struct {
	presencekv.View
	// Set is, for your own presence only, the status you chose: online, away or
	// invisible.
	Set string `json:"set,omitempty"`
}

// selfView is what a user sees of their own presence: what others see, plus their
// chosen status and their real device count.
func selfView(uid string, u *presencekv.User) presenceBody {
	b := presenceBody{View: presencekv.ViewOf(uid, u), Set: presencekv.StatusOnline}
	if u != nil {
		if u.Set != "" {
			b.Set = u.Set
		}
		b.Devices = u.Devices()
	}
	return b
}

// ServeGet serves GET /api/v1/users/{id}/presence: the user's presence as the
// caller may see it (yourself, a chat partner, or any user for a service).
func (p *Presence) ServeGet(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	uid := r.PathValue("id")
	if err := protocol.ValidID("user", uid); err != nil {
		p.fail(w, err)
		return
	}
	if err := p.mayWatch(r.Context(), id.UserID, id.Service, uid); err != nil {
		p.fail(w, err)
		return
	}
	u, err := p.user(r.Context(), uid)
	if err != nil {
		p.fail(w, err)
		return
	}
	if uid == id.UserID {
		httpx.WriteJSON(w, http.StatusOK, selfView(uid, u))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, presenceBody{View: presencekv.ViewOf(uid, u)})
}

// putPresenceRequest is the body of PUT /api/v1/users/{id}/presence.
type putPresenceRequest struct {
	// Status: online, away or invisible (others see invisible users as offline).
	Status string `json:"status"`
}

// ServePut serves PUT /api/v1/users/{id}/presence: set your own chosen status (a
// service may set anyone's). It answers with your presence after the change.
func (p *Presence) ServePut(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	uid := r.PathValue("id")
	if err := protocol.ValidID("user", uid); err != nil {
		p.fail(w, err)
		return
	}
	if uid != id.UserID && !id.Service {
		p.fail(w, protocol.Errorf(protocol.CodeForbidden, "you may set only your own presence"))
		return
	}
	var req putPresenceRequest
	if err := p.d.Body.Decode(w, r, &req); err != nil {
		p.fail(w, err)
		return
	}
	switch req.Status {
	case presencekv.StatusOnline, presencekv.StatusAway, presencekv.StatusInvisible:
	default:
		p.fail(w, protocol.Errorf(protocol.CodeBadRequest, `status must be "online", "away" or "invisible"`))
		return
	}
	reply, err := p.request(r.Context(), &presencekv.Report{Kind: presencekv.KindSet, User: uid, Status: req.Status})
	if err != nil || reply.User == nil {
		p.log.Warn("presence set failed", zap.String("user_id", uid), zap.Error(err))
		p.fail(w, protocol.Errorf(protocol.CodeUnavailable, "presence is not available; retry"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, selfView(uid, reply.User))
}

// fail writes err (httpx.Fail).
func (p *Presence) fail(w http.ResponseWriter, err error) { httpx.Fail(p.log, w, err) }

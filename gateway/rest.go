package gateway

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/protocol"
)

// MaxChatName is the longest chat name, in bytes (chats.MaxName).
const MaxChatName = chats.MaxName

// The gateway's spellings of the REST helpers every concept package shares
// (gateway/internal/httpx).
var (
	writeJSON  = httpx.WriteJSON
	writeError = httpx.WriteError
)

// fail writes err (a *protocol.Error, or an internal error that is logged).
func (g *Gateway) fail(w http.ResponseWriter, err error) { httpx.Fail(g.log, w, err) }

// countLimited adds one to n if err is a refusal of the REST buckets.
func countLimited(n *atomic.Int64, err error) {
	if pe, ok := err.(*protocol.Error); ok && pe.Code == protocol.CodeRateLimited {
		n.Add(1)
	}
}

// authedHandler is the handler of a route that needs a bearer token.
type authedHandler = httpx.AuthedHandler

// authed requires a valid bearer token.
func (g *Gateway) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.cors(w, r) // cors.go
		token := ""
		if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = strings.TrimSpace(t)
		}
		id, err := g.deps.Auth.Verify(r.Context(), token)
		if err != nil {
			writeError(w, http.StatusUnauthorized, authError(err))
			return
		}
		h(w, r, id)
	}
}

// decodeBody reads a JSON body of at most MaxBodyBytes into v, refusing unknown
// fields and trailing data (httpx.Body).
func (g *Gateway) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return g.body().Decode(w, r, v)
}

// body is the bound of a JSON request body.
func (g *Gateway) body() httpx.Body {
	return httpx.Body{MaxBytes: g.cfg.MaxBodyBytes, Timeout: g.cfg.BodyTimeout}
}

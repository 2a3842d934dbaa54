package gateway

import (
	"io/fs"
	"net/http"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/sdk/ts"
)

// The route table: every HTTP route the gateway serves, in one place, with who
// may call it. docs/openapi.yaml documents the /api/v1 routes.
//
// What wraps the table (the same for every route): the edge guard (edge.go: the
// dev-mode Host check and the per-route body deadline, which names /ws, the SSE
// stream and uploads), then this mux. A token route meets authed (rest.go): CORS
// headers (cors.go), then 401 unauthorized without a valid bearer token, then its
// handler with the caller's identity. Routes that authenticate themselves take the
// token from the URL or the first frame (gateway/transport) or answer only in dev mode
// (webchat.go). Patterns are http.ServeMux patterns, so precedence is by
// specificity, not by the order below; two routes that conflict panic at start.

// routeAuth is who may call a route.
type routeAuth int

const (
	// authToken: a valid bearer token, checked before the handler (authed).
	authToken routeAuth = iota
	// authSelf: the handler checks credentials itself.
	authSelf
	// authNone: anyone (health, preflight, static files, the 404 answer).
	authNone
)

// route is one entry of the table.
type route struct {
	// method is the HTTP method; "" matches every method (the handler answers
	// those it does not serve).
	method string
	// path is an http.ServeMux path pattern ("/api/v1/chats/{id}").
	path string
	auth routeAuth
	// withID is the handler of an authToken route; h of the others.
	withID authedHandler
	h      http.Handler
}

// token is a route that needs a bearer token.
func token(method, path string, h authedHandler) route {
	return route{method: method, path: path, auth: authToken, withID: h}
}

// selfAuthed is a route whose handler checks credentials itself.
func selfAuthed(method, path string, h http.HandlerFunc) route {
	return route{method: method, path: path, auth: authSelf, h: h}
}

// public is a route anyone may call.
func public(method, path string, h http.Handler) route {
	return route{method: method, path: path, auth: authNone, h: h}
}

// routeTable returns every route of the gateway.
func (g *Gateway) routeTable() []route {
	rs := []route{
		// Transports: the WebSocket and its HTTP fallback (gateway/transport, wired in transport.go).
		selfAuthed("GET", "/ws", g.conns.HandleWS),
		selfAuthed("GET", SSEPath, g.conns.HandleEvents),
		selfAuthed("POST", FramesPath, g.conns.HandleFrames),

		// Chats and their messages (gateway/chats).
		token("GET", "/api/v1/chats", g.chats.List),
		token("POST", "/api/v1/chats", g.chats.Create),
		token("GET", "/api/v1/chats/{id}", g.chats.Get),
		token("PATCH", "/api/v1/chats/{id}", g.chats.Rename),
		token("GET", "/api/v1/chats/{id}/members", g.chats.Members),
		token("POST", "/api/v1/chats/{id}/members", g.chats.AddMember),
		token("DELETE", "/api/v1/chats/{id}/members", g.chats.RemoveMember),
		token("DELETE", "/api/v1/chats/{id}/members/{uid}", g.chats.RemoveMember),
		token("POST", "/api/v1/chats/{id}/leave", g.chats.Leave),
		token("GET", "/api/v1/chats/{id}/messages", g.chats.Messages),
		token("POST", "/api/v1/chats/{id}/messages", g.chats.Post),
		token("GET", "/api/v1/chats/{id}/receipts", g.memberState.Receipts), // gateway/memberstate
		token("GET", "/api/v1/chats/{id}/mute", g.memberState.Mute),
		token("PUT", "/api/v1/chats/{id}/mute", g.memberState.PutMute),

		// Retention (gateway/retention) and erasure (gateway/erasure).
		token("PUT", "/api/v1/chats/{id}/ttl", g.retention.PutTTL),
		token("POST", "/api/v1/chats/{id}/clear", g.retention.Clear),
		token("DELETE", "/api/v1/chats/{id}", g.retention.Delete),
		token("DELETE", "/api/v1/admin/users/{id}", g.erasure.Erase),

		// Presence (gateway/livestate).
		token("GET", "/api/v1/users/{id}/presence", g.presence.ServeGet),
		token("PUT", "/api/v1/users/{id}/presence", g.presence.ServePut),

		// Media (gateway/media).
		token("POST", "/api/v1/media", g.media.Upload),
		token("GET", "/api/v1/media/{id}", g.media.Download),

		// Search (gateway/search).
		token("GET", "/api/v1/search", g.search.Search),

		// Push devices (gateway/people) and the key directory (gateway/keys).
		token("POST", "/api/v1/devices", g.people.PutDevice),
		token("GET", "/api/v1/devices", g.people.Devices),
		token("DELETE", "/api/v1/devices/{id}", g.people.DeleteDevice),
		token("PUT", "/api/v1/keys/devices/{id}", g.keys.Put),
		token("POST", "/api/v1/keys/devices/{id}/one-time-keys", g.keys.AddOneTimeKeys),
		token("DELETE", "/api/v1/keys/devices/{id}", g.keys.Revoke),
		token("GET", "/api/v1/keys/users/{id}", g.keys.Claim),

		// People: profiles, blocks and invitations (gateway/people).
		token("GET", "/api/v1/profile", g.people.OwnProfile),
		token("PUT", "/api/v1/profile", g.people.PutProfile),
		token("GET", "/api/v1/users/{id}/profile", g.people.UserProfile),
		token("GET", "/api/v1/chats/{id}/profiles", g.people.ChatProfiles),
		token("POST", "/api/v1/blocks/{userId}", g.people.Block),
		token("DELETE", "/api/v1/blocks/{userId}", g.people.Unblock),
		token("GET", "/api/v1/blocks", g.people.Blocks),
		token("GET", "/api/v1/invitations", g.people.Invitations),
		token("POST", "/api/v1/invitations/{chatId}/accept", g.people.AcceptInvitation),
		token("POST", "/api/v1/invitations/{chatId}/decline", g.people.DeclineInvitation),

		// Dev tokens: answered only in dev mode (webchat.go).
		selfAuthed("POST", "/api/v1/dev/token", g.devToken),

		// Everything else.
		public("OPTIONS", "/api/", http.HandlerFunc(g.preflight)), // cors.go
		public("GET", "/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]string{"status": "ok"})
		})),
		public("", "/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
		})),
	}
	if g.cfg.WebChat {
		rs = append(rs, webChatRoutes()...)
	}
	return rs
}

// webChatRoutes serve the web chat and the TypeScript SDK it uses (webchat.go),
// when gateway.web-chat is on. No method in the patterns: "GET /" would conflict
// with the "/api/" catch-all; staticFS answers other methods with 405.
func webChatRoutes() []route {
	site, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded directory exists at build time
	}
	sdk, err := fs.Sub(ts.Dist, "dist")
	if err != nil {
		panic(err)
	}
	return []route{
		public("", "/sdk/", http.StripPrefix("/sdk", staticFS(sdk))),
		public("", "/", staticFS(site)),
	}
}

// newMux returns a mux serving the route table.
func (g *Gateway) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range g.routeTable() {
		pattern := rt.path
		if rt.method != "" {
			pattern = rt.method + " " + rt.path
		}
		h := rt.h
		if rt.auth == authToken {
			h = g.authed(rt.withID)
		}
		mux.Handle(pattern, h)
	}
	return mux
}

package gateway

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
)

// web is the web chat: plain HTML, CSS and JS that use the built TypeScript SDK,
// served at /sdk/ from the same binary.
//
//go:embed web
var web embed.FS

// DevTokenTTL is how long a token from POST /api/v1/dev/token is valid.
const DevTokenTTL = 24 * time.Hour

// webCSP is the Content-Security-Policy of every web chat asset: scripts, styles and
// connections only from this origin (which includes its ws:// and wss://), images
// also from blob: and data: for upload previews, no plugins, no framing.
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// staticFS serves files of fsys with security headers; "/" is index.html and
// directories are never listed.
func staticFS(fsys fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", webCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		h.Set("Cache-Control", "no-cache")
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		st, err := fs.Stat(fsys, name)
		if err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		http.ServeFileFS(w, r, fsys, name)
	})
}

// devTokenRequest is the body of POST /api/v1/dev/token.
type devTokenRequest struct {
	User string `json:"user"`
}

// devToken serves POST /api/v1/dev/token {"user":"alice"}: a token for any user,
// for the web chat's sign-in on a dev server. Outside dev mode (a configured key) it
// answers 404 exactly like an unknown endpoint: production never issues tokens.
func (g *Gateway) devToken(w http.ResponseWriter, r *http.Request) {
	if !g.deps.Auth.IsDev() {
		writeError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	// Anyone who can ask for a dev token can be anyone: only this machine may. (A
	// dev gateway refuses to listen on a public address unless told, loudly, to;
	// this holds even then.)
	if !loopbackRemote(r) {
		writeError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden,
			"dev tokens are issued only to clients on the server's own machine; use `natter token --user ID` there"))
		return
	}
	if !g.originAllowed(r) {
		writeError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "origin not allowed"))
		return
	}
	var req devTokenRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	if err := validID("user", req.User); err != nil {
		g.fail(w, err)
		return
	}
	tok, err := g.deps.Auth.SignDev(req.User, DevTokenTTL)
	if errors.Is(err, auth.ErrNotDev) {
		writeError(w, http.StatusNotFound, protocol.Errorf(protocol.CodeNotFound, "no such endpoint"))
		return
	}
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "userId": req.User,
		"expiresAt": time.Now().Add(DevTokenTTL).UnixMilli()})
}

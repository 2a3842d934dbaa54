package gateway

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/natter-chat/natter/pkg/protocol"
)

// CORS for the REST API. gateway.cors-origins lists host patterns (path.Match syntax,
// as gateway.allowed-origins) whose pages may call the API from a browser; the
// default is none: a browser on any other site can neither preflight nor read an
// answer. The API authenticates with a bearer token, never a cookie, so
// credentials are not allowed (Access-Control-Allow-Credentials is never sent).

// corsAllowed reports whether origin (an Origin header value) matches
// gateway.cors-origins.
func (g *Gateway) corsAllowed(origin string) bool {
	if origin == "" || len(g.cfg.CORSOrigins) == 0 {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return false
	}
	host := strings.ToLower(u.Host)
	for _, p := range g.cfg.CORSOrigins {
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return true
		}
	}
	return false
}

// cors sets the CORS answer headers on a response to an allowed origin.
func (g *Gateway) cors(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); g.corsAllowed(o) {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Access-Control-Expose-Headers", "Retry-After, Location")
	}
}

// preflight answers an OPTIONS preflight: 204 with the allowed methods and headers
// for an allowed origin, else 403 forbidden.
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if !g.corsAllowed(o) {
		writeError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "origin not allowed to call this API (gateway.cors-origins)"))
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

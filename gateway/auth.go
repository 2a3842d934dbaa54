package gateway

import (
	"errors"
	"net/http"
	"strings"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
)

// bearer returns the token from "Authorization: Bearer", else the token query
// parameter.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

// authError maps a verification error to a protocol error.
func authError(err error) *protocol.Error {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return protocol.Errorf(protocol.CodeTokenExpired, "token expired: get a new one")
	case errors.Is(err, auth.ErrNoToken):
		return protocol.Errorf(protocol.CodeUnauthorized, "no token: send Authorization: Bearer <jwt>, ?token=, or a connect frame")
	case errors.Is(err, auth.ErrDevKeyMismatch):
		// Dev mode only (loopback): the hint names the server's data directory.
		return protocol.Errorf(protocol.CodeUnauthorized, "invalid token: %s", strings.TrimPrefix(err.Error(), "auth: invalid token: "))
	case errors.Is(err, auth.ErrRevoked):
		return protocol.Errorf(protocol.CodeUnauthorized, "account erased: its tokens are refused")
	case errors.Is(err, auth.ErrTokenTooLarge):
		return protocol.Errorf(protocol.CodeUnauthorized, "token over %d bytes: not a token this server issues or accepts", auth.MaxTokenBytes)
	default:
		return protocol.Errorf(protocol.CodeUnauthorized, "invalid token")
	}
}

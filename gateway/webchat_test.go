package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestWebChatServedWithSecurityHeaders(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `<script type="module" src="/app.js">`},
		{"/index.html", "text/html", "Natter"},
		{"/app.js", "text/javascript", `from "/sdk/natter.js"`},
		{"/style.css", "text/css", ".bubble"},
		{"/dom.js", "text/javascript", "textContent"},
		{"/errors.js", "text/javascript", "humanError"},
		{"/groups.js", "text/javascript", "initGroups"},
		{"/media.js", "text/javascript", "renderMedia"},
		{"/sdk/natter.js", "text/javascript", "NatterClient"},
		{"/sdk/client.js", "text/javascript", "class NatterClient"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, n.HTTPURL()+tc.path)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, resp.Header.Get("Content-Type"), tc.contentType)
			require.Contains(t, body, tc.contains)
			csp := resp.Header.Get("Content-Security-Policy")
			require.Contains(t, csp, "script-src 'self'")
			require.Contains(t, csp, "frame-ancestors 'none'")
			require.NotContains(t, csp, "unsafe-inline")
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
			require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
		})
	}
	for _, tc := range []struct {
		name, method, path string
		status             int
	}{
		{"unknown file", "GET", "/nope.js", http.StatusNotFound},
		{"no directory listing", "GET", "/sdk/", http.StatusNotFound},
		{"traversal", "GET", "/sdk/../../go.mod", http.StatusNotFound},
		{"encoded traversal", "GET", "/%2e%2e/%2e%2e/go.mod", http.StatusNotFound},
		{"post to a page", "POST", "/", http.StatusMethodNotAllowed},
		{"unknown api is json", "GET", "/api/v1/nope", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, n.HTTPURL()+tc.path, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode)
		})
	}
}

func TestWebChatCanBeTurnedOff(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.WebChat = false
	n := testutil.StartNatter(t, cfg)
	resp, _ := get(t, n.HTTPURL()+"/")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = get(t, n.HTTPURL()+"/sdk/natter.js")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestDevTokenEndpoint(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	status, body := n.Do(t, "POST", "/api/v1/dev/token", "", map[string]string{"user": "alice"})
	require.Equal(t, http.StatusOK, status, string(body))
	var out struct {
		Token     string `json:"token"`
		UserID    string `json:"userId"`
		ExpiresAt int64  `json:"expiresAt"`
	}
	require.NoError(t, json.Unmarshal(body, &out))
	require.Equal(t, "alice", out.UserID)
	require.Greater(t, out.ExpiresAt, time.Now().UnixMilli())
	// The token works: it connects as alice.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, n.WSURL(), out.Token, nil)
	require.NoError(t, err)
	defer c.CloseNow()
	require.Equal(t, "alice", c.Connected.UserID)

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   protocol.Code
	}{
		{"malformed JSON", `{"user":`, http.StatusBadRequest, protocol.CodeBadRequest},
		{"unknown field", `{"user":"a","admin":true}`, http.StatusBadRequest, protocol.CodeBadRequest},
		{"no user", `{}`, http.StatusBadRequest, protocol.CodeInvalidID},
		{"hostile user id", `{"user":"a.>"}`, http.StatusBadRequest, protocol.CodeInvalidID},
		{"overlong user id", `{"user":"` + strings.Repeat("a", 65) + `"}`, http.StatusBadRequest, protocol.CodeInvalidID},
		{"oversize body", `{"user":"` + strings.Repeat("a", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.Do(t, "POST", "/api/v1/dev/token", "", tc.body)
			require.Equal(t, tc.status, status, string(body))
			require.Contains(t, string(body), `"code":"`+string(tc.code)+`"`)
		})
	}
	req, err := http.NewRequest("POST", n.HTTPURL()+"/api/v1/dev/token", strings.NewReader(`{"user":"alice"}`))
	require.NoError(t, err)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a foreign page cannot mint tokens")
}

func TestDevTokenEndpointIsAbsentOutsideDevMode(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Auth.Secret = strings.Repeat("s", 32)
	n := testutil.StartNatter(t, cfg)
	for _, body := range []string{`{"user":"alice"}`, `{}`, `garbage`} {
		status, out := n.Do(t, "POST", "/api/v1/dev/token", "", body)
		require.Equal(t, http.StatusNotFound, status, string(out))
		require.Contains(t, string(out), `"code":"not_found"`)
		require.NotContains(t, string(out), "token\":\"ey")
	}
}

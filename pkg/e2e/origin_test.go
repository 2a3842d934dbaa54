package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Cross-site WebSocket hijacking: a page on another site must not open a WebSocket
// with the user's credentials. Only same-origin pages and gateway.allowed-origins
// may. (Security headers on the web chat: gateway TestWebChatServedWithSecurityHeaders.)
func TestWebSocketOriginAllowList(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.AllowedOrigins = []string{"*.trusted.example"}
	n := testutil.StartNatter(t, cfg)
	host := strings.TrimPrefix(n.HTTPURL(), "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"http://" + host, true},
		{"https://chat.trusted.example", true},
		{"https://evil.example", false},
		{"https://trusted.example.evil.example", false},
		{"https://chat.trusted.example.evil.example", false},
		{"null", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, err := client.Dial(ctxT(t, 5*time.Second), n.WSURL(), n.Token(t, "alice"), &client.Options{Header: h})
			if tc.ok {
				require.NoError(t, err)
				c.CloseNow()
				return
			}
			require.ErrorContains(t, err, "HTTP 403")
		})
	}
}

func preflight(t *testing.T, n *testutil.Natter, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("OPTIONS", n.HTTPURL()+"/api/v1/chats", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func corsGet(t *testing.T, n *testutil.Natter, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", n.HTTPURL()+"/api/v1/chats", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Authorization", "Bearer "+n.Token(t, "alice"))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestCORSDefaultsToNone(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	resp := preflight(t, n, "https://app.example")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	resp = corsGet(t, n, "https://app.example")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "a foreign page cannot read the answer")
}

func TestCORSFromConfig(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.CORSOrigins = []string{"app.example", "*.partner.example"}
	n := testutil.StartNatter(t, cfg)
	for _, o := range []string{"https://app.example", "https://x.partner.example"} {
		resp := preflight(t, n, o)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, o)
		require.Equal(t, o, resp.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"), "bearer tokens, never cookies")
		resp = corsGet(t, n, o)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, o, resp.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, resp.Header.Values("Vary"), "Origin")
	}
	for _, o := range []string{"https://evil.example", "https://app.example.evil.example", "null", "file://app.example"} {
		resp := preflight(t, n, o)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, o)
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), o)
		require.Empty(t, corsGet(t, n, o).Header.Get("Access-Control-Allow-Origin"), o)
	}
}

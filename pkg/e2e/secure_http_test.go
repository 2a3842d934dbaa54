package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Issue 14, finding 9: the HTTP server's timeouts and caps, each attacked over a
// raw socket against a running gateway.

// closedWithin reads from c until the server closes it, failing if that takes
// longer than d. It returns what the server sent.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s (got %q)", d, b)
	}
	return string(b)
}

func dialRaw(t *testing.T, n *testutil.Natter) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.GatewayAddr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTrickledBodyIsCutOff: a body sent a byte at a time no longer holds the
// connection (it stayed open 27 s): after gateway.body-timeout the request gets
// 400 and the connection is closed.
func TestTrickledBodyIsCutOff(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.BodyTimeout = 500 * time.Millisecond
	n := testutil.StartNatter(t, cfg)
	for _, path := range []string{"/api/v1/dev/token", "/api/v1/chats"} {
		c := dialRaw(t, n)
		_, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
			path, n.Token(t, "alice"))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { // the trickle: a byte every 100 ms, for as long as the server reads
			for ctx.Err() == nil {
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		got := closedWithin(t, c, 10*time.Second)
		cancel()
		require.True(t, strings.HasPrefix(got, "HTTP/1.1 400"), "%s: %q", path, got)
		require.Contains(t, got, "body-timeout")
		require.Contains(t, strings.ToLower(got), "connection: close")
	}

	// A body that arrives in time, even slowly at first, is served; and a request
	// that takes longer than the body timeout after its body (a send waits for
	// JetStream) is not cut off by it.
	c := dialRaw(t, n)
	body := `{"user":"alice"}`
	_, err := fmt.Fprintf(c, "POST /api/v1/dev/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:3])
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	_, err = c.Write([]byte(body[3:]))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestSlowHeadersAndIdleConnectionsAreClosed: headers that never finish, and a
// keep-alive connection that never sends its next request, are closed after
// gateway.header-timeout and gateway.idle-timeout.
func TestSlowHeadersAndIdleConnectionsAreClosed(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.HeaderTimeout = 500 * time.Millisecond
	cfg.Gateway.IdleTimeout = 700 * time.Millisecond
	n := testutil.StartNatter(t, cfg)

	c := dialRaw(t, n)
	_, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "))
	require.NoError(t, err)
	closedWithin(t, c, 10*time.Second)

	c = dialRaw(t, n)
	_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = br.ReadByte() // nothing more comes: the server closes the idle connection
	require.ErrorIs(t, err, io.EOF, "idle keep-alive connection closed by the server")
}

// TestOversizeHeadersAndTokensAreRefused: request headers over
// gateway.max-header-bytes get 431, and a token over 8 KiB is refused before it is
// parsed, by every path a token takes (header, query, connect frame), even when
// it is validly signed.
func TestOversizeHeadersAndTokensAreRefused(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	// net/http answers this one itself, before any route (so in plain text, not
	// the API's JSON): a raw socket, not the schema-validated client.
	raw := dialRaw(t, n)
	_, err := fmt.Fprintf(raw, "GET /api/v1/chats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 40<<10))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	// A token just over the limit, correctly signed with the server's key: refused
	// on size alone.
	big := signedTokenOfSize(t, n, "alice", auth.MaxTokenBytes+1)
	garbage := strings.Repeat("A", auth.MaxTokenBytes+1)
	for _, tok := range []string{big, garbage} {
		status, body := n.Do(t, "GET", "/api/v1/chats", tok, nil)
		require.Equal(t, http.StatusUnauthorized, status, body)
		require.Contains(t, string(body), "token over 8192 bytes")

		ctx := ctxT(t, 10*time.Second)
		_, resp, err := websocket.Dial(ctx, n.WSURL()+"?token="+tok, nil)
		require.Error(t, err)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		b, _ := io.ReadAll(resp.Body)
		require.Contains(t, string(b), "token over 8192 bytes")

		ws, _, err := websocket.Dial(ctx, n.WSURL(), nil)
		require.NoError(t, err)
		frame := fmt.Sprintf(`{"type":"connect","token":%q}`, tok)
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(frame)))
		_, _, err = ws.Read(ctx)
		var ce websocket.CloseError
		require.ErrorAs(t, err, &ce)
		require.EqualValues(t, protocol.CloseUnauthorized, ce.Code)
		require.Contains(t, ce.Reason, "token over 8192 bytes")
	}
	// A token at the limit is looked at as usual (and this one is valid).
	ok := signedTokenOfSize(t, n, "alice", auth.MaxTokenBytes)
	status, body := n.Do(t, "GET", "/api/v1/chats", ok, nil)
	require.Equal(t, http.StatusOK, status, body)
	c, err := client.Dial(ctxT(t, 10*time.Second), n.WSURL(), ok, nil)
	require.NoError(t, err)
	c.CloseNow()
}

// signedTokenOfSize returns a valid dev-secret token for user exactly size bytes
// long (padded in an extra claim).
func signedTokenOfSize(t *testing.T, n *testutil.Natter, user string, size int) string {
	t.Helper()
	sign := func(pad int) string {
		c := jwt.MapClaims{"sub": user, "iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix(), "pad": strings.Repeat("p", pad)}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(n.DevSecret(t))
		require.NoError(t, err)
		return tok
	}
	pad := size
	for range 8 { // base64 grows by 4/3: converge on the exact length
		l := len(sign(pad))
		if l == size {
			break
		}
		pad += (size - l) * 3 / 4
		if (size-l)*3/4 == 0 {
			pad += size - l
		}
	}
	tok := sign(pad)
	for len(tok) != size { // fine-tune one byte at a time
		if len(tok) < size {
			pad++
		} else {
			pad--
		}
		tok = sign(pad)
	}
	return tok
}

// TestConnectionsPerIPAreCapped: one address cannot hold more than
// gateway.limits.conns-per-ip connections open (idle ones included); the one over
// the cap is closed before anything is read, and a freed slot is usable again.
func TestConnectionsPerIPAreCapped(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Limits.ConnsPerIP = 5
	n := testutil.StartNatter(t, cfg)
	var held []net.Conn
	for range 5 {
		c := dialRaw(t, n)
		_, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err, "connections under the cap are served")
		resp.Body.Close()
		held = append(held, c)
	}
	over := dialRaw(t, n)
	_, _ = over.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	require.Empty(t, closedWithin(t, over, 10*time.Second), "closed without an answer")

	held[0].Close()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", n.GatewayAddr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "a freed slot is usable again")
	require.Regexp(t, `^[1-9]`, metricValue(t, n, "natter_gateway_conns_per_ip_refused_total"))
}

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Issue 14, findings 2 (dev mode unguarded) and 8 (the admin port leaks secrets):
// each test performs the attack against a running natter over real sockets and
// asserts the refusal. The refused starts (dev auth on a public address, secrets
// as flags) are in pkg/app's startrefuse_test.go, which runs the real binary.

// hostReq sends method path to addr (host:port) with the Host header set to host
// and returns the status and body.
func hostReq(t *testing.T, method, addr, host, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	require.NoError(t, err)
	req.Host = host
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// errorCode is the code of a REST error body ("" if it is not one).
func errorCode(body string) protocol.Code {
	var e struct {
		Error struct {
			Code protocol.Code `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

// publicIP returns an address of this machine that is not loopback; the test is
// skipped, saying why, on a machine without one.
func publicIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to attack from")
	return nil
}

// TestDevServerServesOnlyLoopbackHosts is DNS rebinding against a developer's
// server: a foreign page whose name now resolves to 127.0.0.1 sends its own name in
// Host. Every route answers 421 bad_host; the loopback names work.
func TestDevServerServesOnlyLoopbackHosts(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	require.True(t, n.Auth.IsDev())
	addr := n.GatewayAddr().String()
	_, port, _ := net.SplitHostPort(addr)
	for _, host := range []string{"attacker.example:" + port, "attacker.example", "192.0.2.7:" + port, "localhost.attacker.example", "127.0.0.1.nip.io:" + port, "[::ffff:8.8.8.8]:" + port} {
		for _, tc := range []struct{ method, path, body string }{
			{"POST", "/api/v1/dev/token", `{"user":"alice"}`},
			{"GET", "/", ""},
			{"GET", "/api/v1/chats", ""},
			{"GET", "/ws", ""},
		} {
			status, body := hostReq(t, tc.method, addr, host, tc.path, tc.body)
			require.Equal(t, http.StatusMisdirectedRequest, status, "Host %s %s %s: %s", host, tc.method, tc.path, body)
			require.Equal(t, protocol.CodeBadHost, errorCode(body), body)
			require.NotContains(t, body, `"token"`)
		}
	}
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "127.1.2.3:" + port, "[::1]:" + port, "app.localhost:" + port, "LOCALHOST"} {
		status, body := hostReq(t, "POST", addr, host, "/api/v1/dev/token", `{"user":"alice"}`)
		require.Equal(t, http.StatusOK, status, "Host %s: %s", host, body)
		require.Contains(t, body, `"token"`)
	}

	// Outside dev mode the Host header is the operator's business (proxies, names).
	cfg := testutil.Config(t)
	cfg.Auth.Secret = strings.Repeat("k", 32)
	prod := testutil.StartNatter(t, cfg)
	status, body := hostReq(t, "GET", prod.GatewayAddr().String(), "chat.example.com", "/healthz", "")
	require.Equal(t, http.StatusOK, status, body)
}

// TestDevTokenNeverIssuedToAnotherMachine: even a dev server told (loudly) to
// listen on every interface issues dev tokens only to its own machine, and answers
// a remote client's own Host name with bad_host.
func TestDevTokenNeverIssuedToAnotherMachine(t *testing.T) {
	ip := publicIP(t)
	cfg := testutil.Config(t)
	cfg.Gateway.Listen = "0.0.0.0:0"
	cfg.Auth.InsecureDevOnPublicAddress = true
	n := testutil.StartNatter(t, cfg)
	_, port, _ := net.SplitHostPort(n.GatewayAddr().String())
	remote := net.JoinHostPort(ip.String(), port)

	// From the network, with the server's address as Host: bad_host.
	status, body := hostReq(t, "POST", remote, remote, "/api/v1/dev/token", `{"user":"alice"}`)
	require.Equal(t, http.StatusMisdirectedRequest, status, body)
	require.Equal(t, protocol.CodeBadHost, errorCode(body))
	// From the network, forging a loopback Host: the peer is not loopback, no token.
	status, body = hostReq(t, "POST", remote, "localhost:"+port, "/api/v1/dev/token", `{"user":"alice"}`)
	require.Equal(t, http.StatusForbidden, status, body)
	require.Equal(t, protocol.CodeForbidden, errorCode(body))
	require.NotContains(t, body, `"token"`)
	require.Contains(t, body, "natter token")
	// On the machine itself it works.
	status, body = hostReq(t, "POST", "127.0.0.1:"+port, "127.0.0.1:"+port, "/api/v1/dev/token", `{"user":"alice"}`)
	require.Equal(t, http.StatusOK, status, body)
}

// TestDevModeOnPublicAddressIsRefused: the configuration a dev server on 0.0.0.0
// would start with does not validate; with a key configured it does, and the
// override flag (named as a warning) lets it through.
func TestDevModeOnPublicAddressIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, listen := range []string{"0.0.0.0:8080", ":8080", "[::]:8080", "192.0.2.2:8080", "chat.example.com:8080"} {
		_, _, err := app.Load("serve", []string{"--data-dir", dir, "--gateway.listen", listen})
		require.ErrorContains(t, err, "is not a loopback address and auth is in dev mode", listen)
		require.NotContains(t, err.Error(), "\n", "one line")
	}
	for _, args := range [][]string{
		{"--gateway.listen", "127.0.0.1:8080"},
		{"--gateway.listen", "localhost:8080"},
		{"--gateway.listen", "[::1]:8080"},
		{"--gateway.listen", "0.0.0.0:8080", "--roles", "sequencer,persister"}, // no gateway
		{"--gateway.listen", "0.0.0.0:8080", "--auth.dev=false", "--auth.public-key-files", "/dev/null"},
		{"--gateway.listen", "0.0.0.0:8080", "--auth.insecure-dev-on-public-address"},
	} {
		_, _, err := app.Load("serve", append([]string{"--data-dir", dir}, args...))
		if err != nil {
			require.NotContains(t, err.Error(), "loopback", args)
		}
	}
}

// TestAdminPortShowsNoSecrets is finding 8: the secret came in through the
// environment (the only way besides files: flags are refused), pprof is off by
// default, and with pprof on the command line is still not served.
func TestAdminPortShowsNoSecrets(t *testing.T) {
	secret := "admin-port-test-secret-" + strings.Repeat("x", 16)
	t.Setenv("NATTER_AUTH_SECRET", secret)
	for _, pprof := range []bool{false, true} {
		args := []string{"--data-dir", t.TempDir(), "--gateway.listen", "127.0.0.1:0", "--admin.listen", "127.0.0.1:0",
			"--nats.listen", "none", "--auth.dev=false"}
		if pprof {
			args = append(args, "--admin.pprof")
		}
		cfg, _, err := app.Load("serve", args)
		require.NoError(t, err)
		require.Equal(t, secret, cfg.Auth.Secret)
		n := testutil.StartNatter(t, cfg)
		base := "http://" + n.Admin.Addr().String()
		for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/", "/debug/pprof/goroutine?debug=2", "/metrics", "/healthz", "/readyz"} {
			status, body := getURL(t, base+path)
			require.NotContains(t, body, secret, path)
			require.NotContains(t, body, "auth.secret", path)
			switch {
			case path == "/debug/pprof/cmdline":
				require.Equal(t, http.StatusNotFound, status, "never served")
			case strings.HasPrefix(path, "/debug/pprof/") && !pprof:
				require.Equal(t, http.StatusNotFound, status, "%s: pprof is off by default", path)
			default:
				require.Equal(t, http.StatusOK, status, path)
			}
		}
		n.Stop()
	}

	// The flag form is refused before anything starts, in one line that names the
	// other forms and does not repeat the secret.
	for _, flagName := range []string{"auth.secret", "nats.password", "cassandra.password"} {
		_, _, err := app.Load("serve", []string{"--data-dir", t.TempDir(), "--" + flagName + "=" + secret})
		require.ErrorContains(t, err, "-"+flagName+": secrets are not accepted on the command line", flagName)
		require.ErrorContains(t, err, flagName+"-file")
		require.NotContains(t, err.Error(), secret)
		require.NotContains(t, err.Error(), "\n")
	}
}

// getURL GETs url and returns the status and body.
func getURL(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

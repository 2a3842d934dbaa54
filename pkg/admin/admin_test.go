package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/admin"
	"github.com/natter-chat/natter/pkg/metrics"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// TestMain checks that no test leaves a goroutine behind (servers are closed).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client keeps no idle connections, so none outlives a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func start(t *testing.T, cfg admin.Config) (*admin.Server, string) {
	t.Helper()
	m := metrics.New()
	m.FrameIn("send")
	s, err := admin.Start(cfg, m.Registry, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, "http://" + s.Addr().String()
}

func TestEndpoints(t *testing.T) {
	s, base := start(t, admin.Config{Listen: "127.0.0.1:0", CheckTimeout: time.Second, Pprof: true})
	var natsUp atomic.Bool
	s.AddCheck(admin.Check{Name: "nats", Check: func(context.Context) error {
		if !natsUp.Load() {
			return errors.New("NATS connection is RECONNECTING")
		}
		return nil
	}})
	s.AddCheck(admin.Check{Name: "store", Check: func(context.Context) error { return nil }})

	status, body := get(t, "GET", base+"/healthz")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status":"ok"}`, body)

	status, body = get(t, "GET", base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status, "a failing check makes the process unready")
	var st admin.Status
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Equal(t, "unready", st.Status)
	require.Equal(t, map[string]string{"nats": "NATS connection is RECONNECTING"}, st.Reasons, "only the failing check is named")

	natsUp.Store(true)
	status, body = get(t, "GET", base+"/readyz")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status":"ready"}`, body)

	status, body = get(t, "GET", base+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `natter_gateway_frames_in_total{type="send"} 1`)
	require.Contains(t, body, "go_goroutines", "runtime metrics are included")

	status, body = get(t, "GET", base+"/debug/pprof/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "goroutine")
	status, _ = get(t, "GET", base+"/debug/pprof/goroutine?debug=1")
	require.Equal(t, http.StatusOK, status)
	status, body = get(t, "GET", base+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusNotFound, status, "the process's arguments are never served, pprof on or off")
	require.NotContains(t, body, "admin.test")
}

// TestPprofOffByDefault: with admin.pprof at its default, no profile (and not the
// command line) is served.
func TestPprofOffByDefault(t *testing.T) {
	var cfg admin.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	require.False(t, cfg.Pprof, "admin.pprof defaults to off")
	cfg.Listen = "127.0.0.1:0"
	_, base := start(t, cfg)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/goroutine?debug=2"} {
		status, body := get(t, "GET", base+p)
		require.Equal(t, http.StatusNotFound, status, p)
		require.NotContains(t, body, "goroutine", p)
	}
}

func TestHostileRequests(t *testing.T) {
	_, base := start(t, admin.Config{Listen: "127.0.0.1:0", CheckTimeout: time.Second})
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"POST", "/metrics", http.StatusMethodNotAllowed},
		{"DELETE", "/readyz", http.StatusMethodNotAllowed},
		{"PUT", "/healthz", http.StatusMethodNotAllowed},
		{"GET", "/nope", http.StatusNotFound},
		{"GET", "/metrics/../../etc/passwd", http.StatusNotFound},
		{"GET", "/debug/pprof/no-such-profile", http.StatusNotFound},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, _ := get(t, tc.method, base+tc.path)
			if tc.path == "/metrics/../../etc/passwd" {
				// The client cleans the path to /etc/passwd, or the mux redirects it.
				require.NotEqual(t, http.StatusOK, status)
				return
			}
			require.Equal(t, tc.status, status)
		})
	}
}

func TestSlowCheckTimesOut(t *testing.T) {
	s, base := start(t, admin.Config{Listen: "127.0.0.1:0", CheckTimeout: 100 * time.Millisecond})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.AddCheck(admin.Check{Name: "store", Check: func(ctx context.Context) error {
		<-release // a check that ignores its context
		return nil
	}})
	status, body := get(t, "GET", base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body, `"store":"no answer within 100ms"`)
}

func TestDisabledAndBadConfig(t *testing.T) {
	s, err := admin.Start(admin.Config{Listen: ""}, metrics.New().Registry, zap.NewNop())
	require.NoError(t, err)
	require.Nil(t, s, "an empty listen address disables the server")
	require.NoError(t, s.Close(), "Close on the disabled server is a no-op")
	s.AddCheck(admin.Check{Name: "x"})

	for _, tc := range []struct {
		cfg admin.Config
		err string
	}{
		{admin.Config{Listen: "127.0.0.1:9090", CheckTimeout: time.Second}, ""},
		{admin.Config{Listen: "", CheckTimeout: time.Second}, ""},
		{admin.Config{Listen: "nonsense", CheckTimeout: time.Second}, "admin.listen"},
		{admin.Config{Listen: "127.0.0.1:0", CheckTimeout: 0}, "check-timeout"},
	} {
		err := tc.cfg.Validate()
		if tc.err == "" {
			require.NoError(t, err)
		} else {
			require.ErrorContains(t, err, tc.err)
		}
	}

	// A taken port is a clear error.
	_, base := start(t, admin.Config{Listen: "127.0.0.1:0", CheckTimeout: time.Second})
	_, err = admin.Start(admin.Config{Listen: strings.TrimPrefix(base, "http://"), CheckTimeout: time.Second}, metrics.New().Registry, zap.NewNop())
	require.ErrorContains(t, err, "admin.listen")
}

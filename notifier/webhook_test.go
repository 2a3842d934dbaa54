package notifier

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSignAndVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"id":"bob.c.1"}`)
	at := time.Unix(1_800_000_000, 0)
	good := Sign(secret, body, at)
	require.True(t, strings.HasPrefix(good, "t=1800000000,v1="), good)
	// The documented construction: HMAC-SHA256 over "<t>.<body>", hex.
	require.Equal(t, "t=1800000000,v1="+mac(secret, "1800000000", body), good)
	sigOf := func(h string) string { return h[strings.Index(h, "v1=")+3:] }
	for _, tc := range []struct {
		name   string
		secret []byte
		body   []byte
		header string
		now    time.Time
		err    error
	}{
		{"valid", secret, body, good, at, nil},
		{"valid within tolerance", secret, body, good, at.Add(4 * time.Minute), nil},
		{"two v1, one right (key rotation)", secret, body, "t=1800000000,v1=00ff,v1=" + sigOf(good), at, nil},
		{"wrong secret", []byte("other"), body, good, at, ErrBadSignature},
		{"tampered body", secret, []byte(`{"id":"eve.c.1"}`), good, at, ErrBadSignature},
		{"tampered timestamp", secret, body, strings.Replace(good, "t=1800000000", "t=1800000001", 1), at, ErrBadSignature},
		{"stale", secret, body, good, at.Add(6 * time.Minute), ErrStaleSignature},
		{"from the future", secret, body, good, at.Add(-6 * time.Minute), ErrStaleSignature},
		{"no timestamp", secret, body, "v1=" + sigOf(good), at, ErrBadSignature},
		{"no signature", secret, body, "t=1800000000", at, ErrBadSignature},
		{"empty", secret, body, "", at, ErrBadSignature},
		{"garbage", secret, body, "t=x,v1", at, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.body, tc.header, tc.now, 5*time.Minute)
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
		})
	}
}

func TestPreview(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
		cut  bool
	}{
		{"hello", 10, "hello", false},
		{"hello", 5, "hello", false},
		{"hello", 3, "hel", true},
		{"héllo", 2, "h", true}, // é is two bytes: never cut inside a rune
		{"héllo", 3, "hé", true},
		{"日本語", 4, "日", true},
		{"anything", 0, "", true},
		{"", 0, "", false},
	} {
		got, cut := preview(tc.in, tc.max)
		require.Equal(t, tc.want, got, "%q/%d", tc.in, tc.max)
		require.Equal(t, tc.cut, cut, "%q/%d", tc.in, tc.max)
	}
}

func TestDeliverRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers in order; the last repeats
		attempts int
		ok       bool
	}{
		{"first time", []int{204}, 1, true},
		{"5xx then ok", []int{503, 500, 200}, 3, true},
		{"429 and 408 are retried", []int{429, 408, 202}, 3, true},
		{"always down", []int{503}, 4, false},
		{"4xx is final", []int{400}, 1, false},
		{"401 is final", []int{401}, 1, false},
		{"redirect is final", []int{302}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				_, _ = io.Copy(io.Discard, r.Body)
				if r.Header.Get(IDHeader) != "id-1" || Verify([]byte("k"), []byte("{}"), r.Header.Get(SignatureHeader), time.Now(), time.Minute) != nil {
					w.WriteHeader(http.StatusTeapot)
					return
				}
				st := tc.statuses[min(i, len(tc.statuses)-1)]
				if st == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(st)
			}))
			defer srv.Close()
			cfg := Config{WebhookURL: srv.URL, WebhookTimeout: time.Second, Attempts: 4, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
			var progress int
			attempts, err := newWebhook(&cfg, []byte("k")).deliver(context.Background(), "id-1", []byte("{}"), func() { progress++ })
			require.Equal(t, tc.attempts, attempts)
			require.Equal(t, tc.attempts, int(n.Load()), "requests made")
			require.Equal(t, tc.attempts, progress, "progress before every attempt")
			if tc.ok {
				require.NoError(t, err)
			} else {
				var se *statusError
				require.True(t, errors.As(err, &se), "%v", err)
				require.Equal(t, strconv.Itoa(tc.statuses[len(tc.statuses)-1]), strconv.Itoa(se.status))
			}
		})
	}
	t.Run("unreachable is retried", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		cfg := Config{WebhookURL: url, WebhookTimeout: time.Second, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
		attempts, err := newWebhook(&cfg, []byte("k")).deliver(context.Background(), "id", []byte("{}"), nil)
		require.Error(t, err)
		require.Equal(t, 3, attempts)
	})
}

func TestConfigValidate(t *testing.T) {
	base := Config{WebhookTimeout: time.Second, Attempts: 3, Backoff: time.Second, MaxBackoff: time.Minute,
		Window: time.Second, MaxRecipients: 10, LargeChatMembers: 1000, BatchSize: 500, Workers: 1, DLQMaxAge: time.Hour}
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		ok   bool
	}{
		{"defaults-like", func(c *Config) {}, true},
		{"webhook with secret", func(c *Config) { c.WebhookURL, c.WebhookSecretFile = "https://push.example.com/hook", "/s" }, true},
		{"webhook without secret", func(c *Config) { c.WebhookURL = "https://push.example.com/hook" }, false},
		{"webhook not http", func(c *Config) { c.WebhookURL, c.WebhookSecretFile = "ftp://x/y", "/s" }, false},
		{"webhook no host", func(c *Config) { c.WebhookURL, c.WebhookSecretFile = "http:///y", "/s" }, false},
		{"window under 1s", func(c *Config) { c.Window = 500 * time.Millisecond }, false},
		{"no attempts", func(c *Config) { c.Attempts = 0 }, false},
		{"backoff over max", func(c *Config) { c.Backoff = 2 * time.Minute }, false},
		{"negative preview", func(c *Config) { c.PreviewBytes = -1 }, false},
		{"no batch", func(c *Config) { c.BatchSize = 0 }, false},
		{"batch over a page", func(c *Config) { c.BatchSize = 1001 }, false},
		{"large chat of one", func(c *Config) { c.LargeChatMembers = 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			if tc.ok {
				require.NoError(t, c.Validate())
			} else {
				require.Error(t, c.Validate())
			}
		})
	}
}

package testutil

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/natsutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Natter is a natter process started in-process for a test.
type Natter struct {
	*app.App
	Config *app.Config
	secret []byte
}

// Config returns a configuration for tests: every role, a fresh data directory,
// random ports, an in-process embedded NATS server. Adjust it before StartNatter.
func Config(t testing.TB) *app.Config {
	c := app.DefaultConfig()
	c.DataDir = t.TempDir()
	c.NATS.Listen = "127.0.0.1:-1"
	c.NATS.Partitions = 4
	c.Gateway.Listen = "127.0.0.1:0"
	c.Log.Level = "warn"
	c.Admin.Listen = "127.0.0.1:0" // a free port: several natters run side by side
	c.NATS.Sync = "1s"             // fsync policy changes cost, not behaviour: keep the suite fast
	c.Gateway.DrainWindow = 0      // tests that drain set their own window
	c.Gateway.Limits.Disable()     // abuse limits off: tests of them (e2e/limits_test.go) set their own
	// Users who share no chat are added to groups directly, as before invitations
	// existed: tests of consent (e2e/people_test.go) turn this off.
	c.Gateway.Consent.DirectAdds = true
	return c
}

// Logger returns a logger for tests: quiet unless NATTER_TEST_LOG is set.
func Logger(t testing.TB) *zap.Logger {
	if os.Getenv("NATTER_TEST_LOG") != "" {
		return zaptest.NewLogger(t)
	}
	return zap.NewNop()
}

// StartNatter starts natter with cfg and stops it when the test ends (or on Stop).
func StartNatter(t testing.TB, cfg *app.Config) *Natter {
	t.Helper()
	return StartNatterLog(t, cfg, Logger(t))
}

// StartNatterLog is StartNatter logging to log (for tests of what is logged).
func StartNatterLog(t testing.TB, cfg *app.Config, log *zap.Logger) *Natter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start natter: %v", err)
	}
	n := &Natter{App: a, Config: cfg}
	if a.Auth != nil && a.Auth.DevSecretPath != "" {
		n.secret, err = auth.LoadOrCreateDevSecret(filepath.Join(cfg.DataDir, auth.DevSecretName))
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		n.Stop()
		// Every role ran as its own NATS user (embedded server): an operation the
		// server refused for lack of permission is a role doing what it may not, or
		// a permission set (natsutil.Permissions) missing what a role needs.
		if v, seen := n.PermissionViolations(); v > 0 {
			t.Errorf("natter: NATS refused %d operations of the roles for lack of permission: %q", v, seen)
		}
	})
	return n
}

// Stop stops the process (idempotent).
func (n *Natter) Stop() {
	if n.App != nil {
		n.App.Close()
	}
}

// WSURL is the gateway's WebSocket URL.
func (n *Natter) WSURL() string { return "ws://" + n.GatewayAddr().String() + "/ws" }

// HTTPURL is the gateway's base URL.
func (n *Natter) HTTPURL() string { return "http://" + n.GatewayAddr().String() }

// Token returns a dev token for user, valid for an hour.
func (n *Natter) Token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Sign(n.secret, user, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TokenTTL returns a token for user signed with the dev secret, valid for ttl
// (negative: already expired). A subject overrides the user ID unchecked, for tests
// of hostile tokens.
func (n *Natter) TokenTTL(t testing.TB, user string, ttl time.Duration, subject ...string) string {
	t.Helper()
	now := time.Now()
	sub := user
	if len(subject) > 0 {
		sub = subject[0]
	}
	c := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(now.Add(min(ttl, 0) - time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(n.secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ServiceToken returns a dev service token for name.
func (n *Natter) ServiceToken(t testing.TB, name string) string {
	t.Helper()
	tok, err := auth.Sign(n.secret, name, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ScopedServiceToken returns a dev service token for name holding scopes (e.g.
// protocol.ScopeChatsAdmin).
func (n *Natter) ScopedServiceToken(t testing.TB, name string, scopes ...string) string {
	t.Helper()
	tok, err := auth.Sign(n.secret, name, time.Hour, true, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TokenWithScope returns a user (not service) token for user claiming scopes, for
// tests that a scope means nothing on a user token.
func (n *Natter) TokenWithScope(t testing.TB, user string, scopes ...string) string {
	t.Helper()
	tok, err := auth.Sign(n.secret, user, time.Hour, false, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ConnectNATS connects to the embedded server's listener over TCP as user (one of
// natsutil.Users), with its generated password and inbox prefix, as another process
// or a backend service would. onErr hears the server's asynchronous errors
// (permissions violations); it may be nil.
func (n *Natter) ConnectNATS(t testing.TB, user string, onErr func(error)) *nats.Conn {
	t.Helper()
	pw, err := natsutil.ReadPasswordFile(natsutil.PasswordFile(n.NATSCredsDir, user))
	if err != nil {
		t.Fatal(err)
	}
	opts := []nats.Option{nats.UserInfo(user, pw), nats.CustomInboxPrefix(natsutil.InboxPrefix(user))}
	if onErr != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { onErr(err) }))
	}
	nc, err := nats.Connect(n.NATS.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect to NATS as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Dial connects user to the gateway; the connection closes when the test ends.
func (n *Natter) Dial(t testing.TB, user string) *client.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, n.WSURL(), n.Token(t, user), nil)
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// DevSecret returns the dev secret the server signs and verifies tokens with (for
// tests that build tokens of their own shape); it fails outside dev mode.
func (n *Natter) DevSecret(t testing.TB) []byte {
	t.Helper()
	if n.secret == nil {
		t.Fatal("not in dev mode: no dev secret")
	}
	return n.secret
}

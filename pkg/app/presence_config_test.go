package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The presence, typing and notifier settings load from YAML, env and flags like every
// other section, with the flag names of docs/presence.md.
func TestPresenceAndNotifierConfigSources(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("k"), 0o600))
	yml := filepath.Join(dir, "natter.yaml")
	require.NoError(t, os.WriteFile(yml, []byte(`
gateway:
  presence_heartbeat: 3s
  typing_throttle: 2s
  typing_max_members: 50
presence:
  expiry: 12s
  grace: 0s
notifier:
  webhook_url: https://push.example.com/natter
  webhook_secret_file: `+secret+`
  window: 2s
`), 0o600))
	t.Setenv("NATTER_NOTIFIER_ATTEMPTS", "9")
	cfg, _, err := Load("serve", []string{"-config", yml, "-data-dir", dir, "-presence.workers", "3"})
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, cfg.Gateway.Presence.Heartbeat)
	require.Equal(t, 2*time.Second, cfg.Gateway.Typing.Throttle)
	require.Equal(t, 6*time.Second, cfg.Gateway.Typing.Expiry, "flag default kept")
	require.Equal(t, 50, cfg.Gateway.Typing.MaxMembers)
	require.Equal(t, 12*time.Second, cfg.Presence.Expiry)
	require.Zero(t, cfg.Presence.Grace)
	require.Equal(t, 3, cfg.Presence.Workers)
	require.Equal(t, "https://push.example.com/natter", cfg.Notifier.WebhookURL)
	require.Equal(t, 2*time.Second, cfg.Notifier.Window)
	require.Equal(t, 9, cfg.Notifier.Attempts)

	_, _, err = Load("serve", []string{"-data-dir", dir, "-notifier.webhook-url", "https://x.example.com/"})
	require.ErrorContains(t, err, "webhook-secret-file", "an unsigned webhook is refused")
	_, _, err = Load("serve", []string{"-data-dir", dir, "-gateway.typing-expiry", "1s", "-gateway.typing-throttle", "2s"})
	require.ErrorContains(t, err, "typing-expiry")
	_, _, err = Load("serve", []string{"-data-dir", dir, "-presence.expiry", "100ms"})
	require.ErrorContains(t, err, "presence.expiry")
}

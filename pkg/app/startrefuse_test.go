package app

import (
	"strings"
	"testing"
)

// TestRefusesDevAuthOnPublicAddress (dev tokens must not reach the network): the
// real binary, in dev
// mode (no key) with the gateway on every interface, exits at once with one line
// saying what to configure.
func TestRefusesDevAuthOnPublicAddress(t *testing.T) {
	args := []string{"--data-dir", t.TempDir(), "--gateway.listen", "0.0.0.0:0", "--admin.listen", "127.0.0.1:0", "--nats.listen", "none"}
	badStart(t, args, "gateway.listen 0.0.0.0:0 is not a loopback address", "dev mode", "auth.secret-file")
}

// TestRefusesSecretFlags (secrets never on the command line): a secret on the command line (where
// ps, /proc and a profiler's cmdline endpoint show it) stops the start with one
// line naming the file and environment forms, without repeating the secret.
func TestRefusesSecretFlags(t *testing.T) {
	secret := strings.Repeat("s3cret", 8)
	for _, f := range []string{"auth.secret", "nats.password", "cassandra.password"} {
		t.Run(f, func(t *testing.T) {
			badStart(t, quiet(t.TempDir(), "--"+f+"="+secret), "-"+f+": secrets are not accepted on the command line", f+"-file")
		})
	}
}

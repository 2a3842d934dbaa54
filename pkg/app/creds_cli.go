package app

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/subjects"
)

const credsUsage = `natter creds [flags]

Prints what another natter process or a backend service needs to connect to the
embedded NATS server's listener (natter serve --nats.listen 127.0.0.1:4222): the
URL, the user, the file holding its password (never the password itself), the
inbox prefix its replies must use and what it may publish and subscribe to. The
credentials are generated in <data-dir>/nats-credentials (mode 0700, files 0600) by
natter serve, or by this command if they do not exist yet.

  natter creds --user backend                      # a backend service (pkg/publish)
  natter creds --user gateway --url nats://10.0.0.5:4222
  natter creds --accounts-conf > accounts.conf     # an external cluster's users

With --accounts-conf it prints the nats-server accounts block giving every Natter
user its permissions, passwords from NATTER_<USER>_NATS_PASSWORD (what
deploy/nats/accounts.conf holds for the default prefix).
`

// credsCmd runs "natter creds".
func credsCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("creds", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, credsUsage); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the natter serving the embedded NATS server")
	user := fs.String("user", "", "one user ("+strings.Join(natsutil.Users[1:], ", ")+"); empty prints every role and the backend user")
	url := fs.String("url", "nats://127.0.0.1:4222", "the listener's URL as the other process reaches it (nats.listen; tls:// with nats.listen-tls-cert)")
	prefix := fs.String("nats.prefix", subjects.DefaultPrefix, "subject prefix (as natter serve's)")
	accounts := fs.Bool("accounts-conf", false, "print the nats-server accounts block for an external cluster instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := subjects.New(*prefix, 1)
	if *accounts {
		fmt.Fprint(stdout, natsutil.AccountsConf(s))
		return nil
	}
	users := natsutil.Users[1:] // admin is for natter itself and operators' tools
	if *user != "" {
		if !slices.Contains(natsutil.Users, *user) {
			return fmt.Errorf("creds: unknown user %q: use one of %s", *user, strings.Join(natsutil.Users, ", "))
		}
		users = []string{*user}
	}
	dir := natsutil.CredsDir(*dataDir)
	if _, err := natsutil.LoadOrCreateCreds(dir); err != nil {
		return fmt.Errorf("creds: %w", err)
	}
	for i, u := range users {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		pf := natsutil.PasswordFile(dir, u)
		fmt.Fprintf(stdout, "user:          %s\nurl:           %s\npassword file: %s\ninbox prefix:  %s\n", u, *url, pf, natsutil.InboxPrefix(u))
		if p := natsutil.Permissions(s, u); p != nil {
			fmt.Fprintf(stdout, "publish:       %s\nsubscribe:     %s\n", strings.Join(p.Publish.Allow, " "), strings.Join(p.Subscribe.Allow, " "))
		} else {
			fmt.Fprintln(stdout, "publish:       everything in the account (admin)")
		}
		switch {
		case u == natsutil.UserBackend:
			fmt.Fprintf(stdout, "go:            nats.Connect(%q, nats.UserInfo(%q, <password file contents>), nats.CustomInboxPrefix(%q))\n", *url, u, natsutil.InboxPrefix(u))
		case u != natsutil.UserAdmin:
			fmt.Fprintf(stdout, "natter:        natter serve --roles %s --nats.url %s --nats.user %s --nats.password-file %s\n", u, *url, u, pf)
		}
	}
	return nil
}

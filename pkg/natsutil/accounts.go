package natsutil

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/natter-chat/natter/pkg/subjects"
)

// PasswordEnv is the environment variable an external nats-server reads user's
// password from in the accounts block AccountsConf writes (NATS config variables),
// e.g. NATTER_GATEWAY_NATS_PASSWORD.
func PasswordEnv(user string) string { return "NATTER_" + strings.ToUpper(user) + "_NATS_PASSWORD" }

// AccountsConf returns the accounts block of a nats-server configuration giving
// Natter's users (Users) their Permissions on subjects s in one account, NATTER,
// with passwords from the environment (PasswordEnv), and a system account. It is
// what deploy/nats/accounts.conf holds for the default prefix.
func AccountsConf(s subjects.Subjects) string {
	var b strings.Builder
	b.WriteString("accounts {\n  NATTER {\n    jetstream: enabled\n    users: [\n")
	for _, u := range Users {
		fmt.Fprintf(&b, "      {\n        user: %s\n        password: $%s\n", u, PasswordEnv(u))
		if p := Permissions(s, u); p != nil {
			b.WriteString("        permissions: {\n")
			list := func(name string, sp *server.SubjectPermission) {
				fmt.Fprintf(&b, "          %s: {\n            allow: [\n", name)
				for _, x := range sp.Allow {
					fmt.Fprintf(&b, "              %q\n", x)
				}
				b.WriteString("            ]\n")
				if len(sp.Deny) > 0 {
					b.WriteString("            deny: [\n")
					for _, x := range sp.Deny {
						fmt.Fprintf(&b, "              %q\n", x)
					}
					b.WriteString("            ]\n")
				}
				b.WriteString("          }\n")
			}
			list("publish", p.Publish)
			list("subscribe", p.Subscribe)
			if p.Response != nil {
				fmt.Fprintf(&b, "          allow_responses: { max: %d }\n", p.Response.MaxMsgs)
			}
			b.WriteString("        }\n")
		}
		b.WriteString("      }\n")
	}
	b.WriteString("    ]\n  }\n  SYS {\n    users: [ { user: sys, password: $NATTER_SYS_NATS_PASSWORD } ]\n  }\n}\nsystem_account: SYS\n")
	return b.String()
}

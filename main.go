// Command natter runs a Natter chat backend: any set of its roles (gateway,
// sequencer, persister, notifier, presence) in one process. See README.md.
package main

import (
	"os"

	"github.com/natter-chat/natter/pkg/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}

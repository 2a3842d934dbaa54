package app

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version describes this binary: the module version (a tag or pseudo-version when
// built with `go build` or `go install`, "(devel)" under `go run`), the VCS revision
// it was built from (with "+dirty" for uncommitted changes) and the Go version.
func Version() string {
	v, rev := "(devel)", "unknown revision"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		var dirty bool
		var when string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			case "vcs.time":
				when = " " + s.Value
			}
		}
		if dirty {
			rev += "+dirty"
		}
		rev += when
	}
	return fmt.Sprintf("natter %s (%s, %s %s/%s)", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

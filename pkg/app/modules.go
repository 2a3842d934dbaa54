package app

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Role names.
const (
	RoleGateway   = "gateway"
	RoleSequencer = "sequencer"
	RolePersister = "persister"
	RolePresence  = "presence"
	RoleNotifier  = "notifier"
	// All is the alias for every role.
	All = "all"
)

// dependency is something a role needs the process to set up first.
type dependency int

const (
	depNATS  dependency = iota // a NATS connection and the streams
	depStore                   // the history store
	depAuth                    // the token verifier
)

// roles is the role table: each role and what it needs. "all" enables every entry.
var roles = map[string][]dependency{
	RoleGateway:   {depNATS, depStore, depAuth},
	RoleSequencer: {depNATS, depStore},
	RolePersister: {depNATS, depStore},
	RolePresence:  {depNATS},
	RoleNotifier:  {depNATS, depStore},
}

func roleList() string {
	names := make([]string, 0, len(roles))
	for n := range roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Targets expands a role selection ("all", or names) into the sorted set of roles.
func Targets(sel []string) ([]string, error) {
	if len(sel) == 0 {
		return nil, fmt.Errorf("roles: select at least one role (%s) or all", roleList())
	}
	set := map[string]bool{}
	for _, r := range sel {
		r = strings.TrimSpace(r)
		switch {
		case r == All:
			for n := range roles {
				set[n] = true
			}
		case roles[r] != nil:
			set[r] = true
		default:
			return nil, fmt.Errorf("roles: unknown role %q: use all or %s", r, roleList())
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}

// needs reports whether any of targets needs d.
func needs(targets []string, d dependency) bool {
	for _, t := range targets {
		if slices.Contains(roles[t], d) {
			return true
		}
	}
	return false
}

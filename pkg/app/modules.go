package app

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/history"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/presence"
	"github.com/natter-chat/natter/sequencer"
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

// role is one row of the role table: what the role needs the process to set up
// first, and how to build it from those. build runs after every dependency of the
// selected roles is up; nc and js are the role's own connection (roleConn).
type role struct {
	deps  []dependency
	build func(a *App, nc *nats.Conn, js jetstream.JetStream) (Role, error)
}

// roles is the role table: each role, what it needs and its constructor. "all"
// enables every entry. A new role is one row here and its package.
var roles = map[string]role{
	RoleGateway:   {deps: []dependency{depNATS, depStore, depAuth}, build: (*App).buildGateway},
	RoleSequencer: {deps: []dependency{depNATS, depStore}, build: (*App).buildSequencer},
	RolePersister: {deps: []dependency{depNATS, depStore}, build: (*App).buildPersister},
	RolePresence:  {deps: []dependency{depNATS}, build: (*App).buildPresence},
	RoleNotifier:  {deps: []dependency{depNATS, depStore}, build: (*App).buildNotifier},
}

func (a *App) buildGateway(nc *nats.Conn, js jetstream.JetStream) (Role, error) {
	cfg := a.Config
	g, err := gateway.New(cfg.Gateway, gateway.Deps{NC: nc, JS: js, Store: a.Store, Subjects: cfg.NATS.Subjects(),
		LargeChatThreshold: cfg.Sequencer.LargeChatThreshold, Auth: a.Auth, History: a.history(js),
		Ready: func(ad net.Addr) { a.gwAddr <- ad }, Metrics: a.Metrics, Storage: a.Storage}, a.Log)
	if err != nil {
		return nil, err
	}
	a.Gateway, a.gwFirst = g, newFirstToStop(g)
	return a.gwFirst, nil
}

func (a *App) buildSequencer(nc *nats.Conn, js jetstream.JetStream) (Role, error) {
	cfg := a.Config
	s, err := sequencer.New(cfg.Sequencer, sequencer.Deps{NC: nc, JS: js, Store: a.Store, Subjects: cfg.NATS.Subjects(),
		Metrics: a.Metrics, History: a.history(js),
		EnsureIngress: func(ctx context.Context) error { return natsutil.EnsureIngress(ctx, js, &cfg.NATS) }}, a.Log)
	if err != nil {
		return nil, err
	}
	a.Seq = s
	return s, nil
}

func (a *App) buildPersister(_ *nats.Conn, js jetstream.JetStream) (Role, error) {
	cfg := a.Config
	p, err := persister.New(cfg.Persister, persister.Deps{JS: js, Store: a.Store, Subjects: cfg.NATS.Subjects(),
		Retention: persister.Retention{MaxAge: cfg.NATS.LogMaxAge, MaxBytes: cfg.NATS.LogMaxBytes, DedupWindow: cfg.NATS.DedupWindow}}, a.Log)
	if err != nil {
		return nil, err
	}
	a.Persist = p
	return p, nil
}

func (a *App) buildPresence(nc *nats.Conn, js jetstream.JetStream) (Role, error) {
	cfg := a.Config
	p, err := presence.New(cfg.Presence, presence.Deps{NC: nc, JS: js, Subjects: cfg.NATS.Subjects(), Replicas: cfg.NATS.Replicas}, a.Log)
	if err != nil {
		return nil, err
	}
	a.Presence = p
	return p, nil
}

func (a *App) buildNotifier(nc *nats.Conn, js jetstream.JetStream) (Role, error) {
	cfg := a.Config
	n, err := notifier.New(cfg.Notifier, notifier.Deps{NC: nc, JS: js, Store: a.Store, Subjects: cfg.NATS.Subjects(),
		Replicas: cfg.NATS.Replicas, Metrics: a.Metrics, History: a.history(js)}, a.Log)
	if err != nil {
		return nil, err
	}
	a.Notifier = n
	return n, nil
}

// history is a history reader over the role's connection: the store merged with
// the log tail the persister has not acknowledged yet.
func (a *App) history(js jetstream.JetStream) *history.Reader {
	return &history.Reader{Store: a.Store, JS: js, Subjects: a.Config.NATS.Subjects(), Consumer: subjects.PersisterConsumer}
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
		case roles[r].build != nil:
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
		if slices.Contains(roles[t].deps, d) {
			return true
		}
	}
	return false
}

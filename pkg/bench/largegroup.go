package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
)

// The largegroup mode: one group of --group-size members, built the way a backend
// builds one (POST /api/v1/chats with the sender alone, then bulk adds of
// protocol.MaxBulkMembers users with a chats:admin service token), of which the
// first --members are connected (spread over the gateways and --procs like fanout)
// and the rest offline. One sender posts at --rate; the figures are the creation
// time, send→deliver to every connected member, and, with NATS reachable
// (--embedded or --nats-url), the time from the first send until every offline
// member's notification is published on natter.notify.<uid> (the notifier
// coalesces a window's messages into one per member).

// LargeGroupResult is what the largegroup mode measured beyond a fanout.
type LargeGroupResult struct {
	GroupSize  int     `json:"groupSize"`
	Connected  int     `json:"connectedMembers"`
	AddCalls   int     `json:"addCalls"`
	CreateS    float64 `json:"createS"` // creation plus every bulk add
	AddsPerSec float64 `json:"addsPerSec"`
	NotifyWant int64   `json:"notifyExpected"` // offline members
	Notified   int64   `json:"notified"`       // distinct offline members notified
	// NotifiedConnected counts connected members who were notified all the same
	// (the notifier's presence view lagging their connection).
	NotifiedConnected int64   `json:"notifiedConnected"`
	NotifyFirst       float64 `json:"notifyFirstS"` // first send → first notification
	NotifyAllS        float64 `json:"notifyAllS"`   // first send → last expected notification
	NotifyNote        string  `json:"notifyNote,omitempty"`
}

// offlineUser is the name of offline member i of run.
func offlineUser(run string, i int) string { return run + "o" + strconv.Itoa(i) }

// serviceToken returns a chats:admin service token signed with the run's secret.
func (ts *tokenSource) serviceToken(name string) (string, error) {
	if ts.secret == nil {
		return "", fmt.Errorf("bench: largegroup signs a chats:admin service token: give --embedded, --data-dir or --secret-file")
	}
	return auth.Sign(ts.secret, name, 24*time.Hour, true, protocol.ScopeChatsAdmin)
}

// createLargeGroup creates plan's one chat with its first member (the sender) and
// adds the other connected members and groupSize-len(members) offline users in
// bulk calls.
func (r *runner) createLargeGroup(ctx context.Context, rc *restClient, p *Plan, groupSize int) error {
	c := &p.Chats[0]
	var out struct {
		ID string `json:"id"`
	}
	sender := p.Users[c.Members[0]]
	if err := rc.do(ctx, http.MethodPost, "/api/v1/chats", sender, map[string]any{"type": "group", "members": []string{}, "name": "bench large group"}, &out); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	c.ID = out.ID
	tok, err := r.tokens.serviceToken("bench-importer")
	if err != nil {
		return err
	}
	users := make([]string, 0, groupSize)
	for _, u := range c.Members[1:] {
		users = append(users, p.Users[u])
	}
	for i := 0; len(users) < groupSize-1; i++ {
		users = append(users, offlineUser(p.Run, i))
	}
	t0 := time.Now()
	calls := 0
	for lo := 0; lo < len(users); lo += protocol.MaxBulkMembers {
		batch := users[lo:min(lo+protocol.MaxBulkMembers, len(users))]
		if err := rc.doToken(ctx, http.MethodPost, "/api/v1/chats/"+c.ID+"/members", tok, map[string]any{"userIds": batch}, nil); err != nil {
			return fmt.Errorf("bulk add %d..%d: %w", lo, lo+len(batch), err)
		}
		calls++
		if done := lo + len(batch); done%20_000 < protocol.MaxBulkMembers || done == len(users) {
			fmt.Fprintf(r.cfg.Stderr, "[create  %5.1fs] %d/%d members added\n", time.Since(t0).Seconds(), done+1, groupSize)
		}
	}
	r.res.LargeGroup = &LargeGroupResult{GroupSize: groupSize, Connected: len(c.Members), AddCalls: calls,
		NotifyWant: int64(groupSize - len(c.Members))}
	return nil
}

// notifyWatch counts the notifications of offline members published on
// natter.notify.*, from the first send on.
type notifyWatch struct {
	sub  *nats.Subscription
	nc   *nats.Conn
	mu   sync.Mutex // guards seen, first, last, connected
	seen map[string]bool
	// connected counts the run's connected members notified (not in got).
	connected int64
	first     time.Time
	last      time.Time
	want      int64
	got       atomic.Int64
	run       string
}

// watchNotifications subscribes to the notifications of the run's offline members
// (nil when NATS is not reachable: the figure is then not measured).
func (r *runner) watchNotifications() (*notifyWatch, error) {
	if r.cfg.NATSURL == "" {
		r.res.LargeGroup.NotifyNote = "no --nats-url: offline notifications not timed"
		return nil, nil
	}
	nc, err := connectNATS(r.cfg, "natter-bench-notify")
	if err != nil {
		return nil, fmt.Errorf("bench: notifications: connect %s: %w", r.cfg.NATSURL, err)
	}
	w := &notifyWatch{nc: nc, seen: map[string]bool{}, want: r.res.LargeGroup.NotifyWant, run: r.plan.Run}
	subj := subjects.New(subjects.DefaultPrefix, 1).Notify("*")
	w.sub, err = nc.Subscribe(subj, func(m *nats.Msg) {
		var note struct {
			UserID string `json:"userId"`
		}
		if json.Unmarshal(m.Data, &note) != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.seen[note.UserID] {
			return
		}
		w.seen[note.UserID] = true
		if !strings.HasPrefix(note.UserID, w.run+"o") { // not an offlineUser
			if strings.HasPrefix(note.UserID, w.run) {
				w.connected++
			}
			return // only the run's offline members are timed
		}
		if w.first.IsZero() {
			w.first = now
		}
		w.last = now
		w.got.Add(1)
	})
	if err == nil {
		_ = w.sub.SetPendingLimits(-1, -1)
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: notifications: subscribe: %w", err)
	}
	return w, nil
}

// wait waits until every offline member was notified or timeout passes, and
// records the times from start (the first send).
func (w *notifyWatch) wait(ctx context.Context, r *runner, start time.Time, timeout time.Duration) {
	defer w.nc.Close()
	deadline := time.Now().Add(timeout)
	r.ticker(ctx, "notify", deadline, func(Progress) bool { return w.got.Load() >= w.want })
	w.mu.Lock()
	defer w.mu.Unlock()
	lg := r.res.LargeGroup
	lg.Notified = w.got.Load()
	lg.NotifiedConnected = w.connected
	if !w.first.IsZero() {
		lg.NotifyFirst = w.first.Sub(start).Seconds()
		lg.NotifyAllS = w.last.Sub(start).Seconds()
	}
	if lg.Notified < w.want {
		lg.NotifyNote = fmt.Sprintf("%d of %d offline members notified within --notify-timeout %s", lg.Notified, w.want, timeout)
	}
}

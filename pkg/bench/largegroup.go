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
// member's notification is published on natter.notify.<uid>, and until every
// offline member was notified of the chat's newest message (the notifier
// coalesces a window's messages into one per member; later windows bring later
// notifications). It also reports the server's CPU over that time and its Go heap
// per member of the group.

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
	// NewestSeq is the chat's last seq after the sends; NotifiedNewest how many
	// offline members got a notification of it (a window's messages coalesce: the
	// last pass shows the newest), NotifyNewestS when the last of them did.
	NewestSeq      uint64  `json:"newestSeq,omitempty"`
	NotifiedNewest int64   `json:"notifiedNewest"`
	NotifyNewestS  float64 `json:"notifyNewestS"`
	NotifyNote     string  `json:"notifyNote,omitempty"`
	// Notifications counts every notification of the offline members seen,
	// repeats included (a later window notifies a member again).
	Notifications int64 `json:"notifications"`
	// NotifyCPUS is the server's CPU seconds from the first send until every
	// offline member was notified of the newest message (or --notify-timeout):
	// the notifier's passes plus the window's deliveries (and, with --embedded,
	// this process's own counting of the notifications). 0: not measured.
	NotifyCPUS float64 `json:"notifyCpuS,omitempty"`
	// HeapPerMember is the server's Go heap after the group was built less before,
	// per member, bytes (sequencer member state, caches, SQLite's page cache):
	// what a large chat costs per member. 0: not measured (needs --embedded or
	// --metrics-url).
	HeapPerMember float64 `json:"heapPerMemberB,omitempty"`
}

// heapPerMember sets HeapPerMember from the start and created samples.
func (r *runner) heapPerMember() {
	var start, created int64
	for _, s := range r.res.Server {
		switch s.At {
		case "start":
			start = s.HeapInuse
		case "created":
			created = s.HeapInuse
		}
	}
	if lg := r.res.LargeGroup; lg != nil && start > 0 && created > 0 && lg.GroupSize > 0 {
		lg.HeapPerMember = float64(created-start) / float64(lg.GroupSize)
	}
}

// serverCPU returns the server's CPU seconds so far (its processes summed), and
// false when they are not known.
func (r *runner) serverCPU() (float64, bool) {
	pids := r.serverPIDs()
	if len(pids) == 0 {
		return 0, false
	}
	s := r.cpuSample()
	var sum float64
	for _, pid := range pids {
		v, ok := s[pid]
		if !ok {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

// addInBulk adds users to chat with the service token tok, protocol.MaxBulkMembers
// per call (a user token may add only gateway.limits.member-add-burst members at
// once), calling progress with the number added after each call. It returns the
// number of calls.
func addInBulk(ctx context.Context, rc *restClient, tok, chat string, users []string, progress func(done int)) (int, error) {
	calls := 0
	for lo := 0; lo < len(users); lo += protocol.MaxBulkMembers {
		batch := users[lo:min(lo+protocol.MaxBulkMembers, len(users))]
		if err := rc.doToken(ctx, http.MethodPost, "/api/v1/chats/"+chat+"/members", tok, map[string]any{"userIds": batch}, nil); err != nil {
			return calls, fmt.Errorf("bulk add %d..%d: %w", lo, lo+len(batch), err)
		}
		calls++
		if progress != nil {
			progress(lo + len(batch))
		}
	}
	return calls, nil
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
	calls, err := addInBulk(ctx, rc, tok, c.ID, users, func(done int) {
		if done%20_000 < protocol.MaxBulkMembers || done == len(users) {
			fmt.Fprintf(r.cfg.Stderr, "[create  %5.1fs] %d/%d members added\n", time.Since(t0).Seconds(), done+1, groupSize)
		}
	})
	if err != nil {
		return err
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
	mu   sync.Mutex // guards seen, first, last, connected, cpu*, total, newest, target, atTarget, newestAt
	seen map[string]bool
	// connected counts the run's connected members notified (not in got).
	connected int64
	first     time.Time
	last      time.Time
	// cpu0 is the server's CPU seconds at the first send, cpu1 when the wait
	// ended (within 100 ms, the ticker's period, of the last notification it
	// waited for); cpuOK: both known.
	cpu0, cpu1 float64
	cpuOK      bool
	want       int64
	got        atomic.Int64
	run        string
	// newest is each offline member's newest notified seq; newestAt when the
	// last of them reached target (the chat's last seq, once known: 0 before),
	// atTarget how many have.
	total    int64 // every notification of an offline member
	newest   map[string]uint64
	target   uint64
	atTarget int64
	newestAt time.Time
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
	w := &notifyWatch{nc: nc, seen: map[string]bool{}, newest: map[string]uint64{}, want: r.res.LargeGroup.NotifyWant, run: r.plan.Run}
	subj := subjects.New(subjects.DefaultPrefix, 1).Notify("*")
	w.sub, err = nc.Subscribe(subj, func(m *nats.Msg) {
		var note struct {
			UserID      string `json:"userId"`
			LastMessage struct {
				Seq uint64 `json:"seq"`
			} `json:"lastMessage"`
		}
		if json.Unmarshal(m.Data, &note) != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		if strings.HasPrefix(note.UserID, w.run+"o") {
			w.total++
			if prev := w.newest[note.UserID]; note.LastMessage.Seq > prev {
				w.newest[note.UserID] = note.LastMessage.Seq
				if w.target > 0 && prev < w.target && note.LastMessage.Seq >= w.target {
					w.atTarget++
					w.newestAt = now
				}
			}
		}
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

// started records the server's CPU at the first send.
func (w *notifyWatch) started(r *runner) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cpu0, w.cpuOK = r.serverCPU()
}

// setTarget sets the seq every offline member is to be notified of, and counts who
// already was.
func (w *notifyWatch) setTarget(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target = seq
	for _, s := range w.newest {
		if s >= seq {
			w.atTarget++
			w.newestAt = time.Now()
		}
	}
}

// reachedTarget reports whether every offline member was notified of the target
// (true when no target is known).
func (w *notifyWatch) reachedTarget() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.target == 0 || w.atTarget >= w.want
}

// newestSeq reads the chat's last seq (history's newest page, as its sender).
func (r *runner) newestSeq(ctx context.Context) (uint64, error) {
	base, err := httpBase(r.cfg.URLs[0])
	if err != nil {
		return 0, err
	}
	rc := &restClient{base: base, tokens: r.tokens, client: &http.Client{Timeout: 30 * time.Second}}
	c := r.plan.Chats[0]
	var page struct {
		Messages []struct {
			Seq uint64 `json:"seq"`
		} `json:"messages"`
	}
	if err := rc.do(ctx, http.MethodGet, "/api/v1/chats/"+c.ID+"/messages?limit=1", r.plan.Users[c.Members[0]], nil, &page); err != nil {
		return 0, err
	}
	if len(page.Messages) == 0 {
		return 0, fmt.Errorf("bench: chat %s has no messages", c.ID)
	}
	return page.Messages[0].Seq, nil
}

// wait waits until every offline member was notified, and then notified of the
// chat's newest message, or timeout passes, and records the times from start (the
// first send).
func (w *notifyWatch) wait(ctx context.Context, r *runner, start time.Time, timeout time.Duration) {
	defer w.nc.Close()
	deadline := time.Now().Add(timeout)
	if seq, err := r.newestSeq(ctx); err != nil {
		r.res.Notes = append(r.res.Notes, "newest seq not read: "+err.Error())
	} else {
		w.setTarget(seq)
	}
	r.ticker(ctx, "notify", deadline, func(Progress) bool { return w.got.Load() >= w.want && w.reachedTarget() })
	w.mu.Lock()
	defer w.mu.Unlock()
	lg := r.res.LargeGroup
	lg.NewestSeq, lg.NotifiedNewest, lg.Notifications = w.target, w.atTarget, w.total
	if !w.newestAt.IsZero() {
		lg.NotifyNewestS = w.newestAt.Sub(start).Seconds()
	}
	lg.Notified = w.got.Load()
	lg.NotifiedConnected = w.connected
	if !w.first.IsZero() {
		lg.NotifyFirst = w.first.Sub(start).Seconds()
		lg.NotifyAllS = w.last.Sub(start).Seconds()
	}
	if w.cpuOK {
		w.cpu1, w.cpuOK = r.serverCPU()
	}
	if w.cpuOK {
		lg.NotifyCPUS = w.cpu1 - w.cpu0
	}
	if lg.Notified < w.want {
		lg.NotifyNote = fmt.Sprintf("%d of %d offline members notified within --notify-timeout %s", lg.Notified, w.want, timeout)
	}
}

// Package notifier is the role that tells offline users about new messages. It reads
// NATTER_LOG through one durable consumer shared by every instance (so each message is
// handled once) and, for each member but the sender who has no connected device
// (an in-memory view of the presence bucket kept by a watch, presence.go) and has not
// muted the chat, opens a coalescing window: a key in
// the KV bucket "notify" with a TTL, created once per user and chat however many
// messages arrive. When the window's key expires, the server leaves a marker that a
// second shared consumer hands to one instance, which builds one notification (unread
// count in the chat, badge = unread over all chats, last message) and publishes it on
// natter.notify.<uid> and to the webhook, signed, retried with backoff, and kept in
// NATTER_DLQ if it cannot be delivered. Delivery is at least once: a crash between
// sending and acking sends again, with the same Notification.ID.
package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/blockchanges"
	pmetrics "github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// WindowBucket is the KV bucket of open coalescing windows. The notifier's durable
// consumers are named in pkg/subjects (NotifierConsumer, NotifierWindowConsumer).
const WindowBucket = "notify"

// Deps are what the notifier needs from the process.
type Deps struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Store    Store
	Subjects subjects.Subjects
	// Replicas of the streams and buckets the notifier creates (nats.replicas).
	Replicas int
	// Metrics receives the notifier's counters; nil: none.
	Metrics *pmetrics.Metrics
	// History counts a notification's unread messages, the log tail the persister
	// has not stored yet included; nil: the store alone (what it lacks is not counted).
	History Pager
}

// Pager reads a page of a chat's history, as history.Reader.Page does, and whether
// the store holds the log up to a stream seq, as history.Reader.PersistedFloorAtLeast
// does.
type Pager interface {
	Page(ctx context.Context, chat string, q store.HistoryQuery) ([]protocol.Message, error)
	// PageUpTo is Page with the log tail ending at newest, the chat's newest log
	// message as the caller read it (history.Reader.PageUpTo).
	PageUpTo(ctx context.Context, chat string, q store.HistoryQuery, newest *jetstream.RawStreamMsg) ([]protocol.Message, error)
	PersistedFloorAtLeast(ctx context.Context, min uint64) (uint64, error)
}

// Notifier is the notifier role.
type Notifier struct {
	cfg     Config
	deps    Deps
	log     *zap.Logger
	hook    *webhook // nil without a webhook URL
	sent    atomic.Int64
	members *memberCache
	budget  *senderBudget     // pushes per sender (budget.go)
	opened  *openedWindows    // windows this instance opened (opened.go)
	closed  *closedWindows    // windows whose close this instance handled (closed.go)
	blocks  *store.BlockCache // block lists (blocks.go)
	// blockLists reads blocks with the announced changes applied, once Run follows
	// them (blocks.go).
	blockLists blockLists
	// tokensDropped counts push devices removed on a webhook's invalidTokens answer.
	tokensDropped atomic.Int64
	large         largeStats // large.go
	passes        *passes    // large-chat passes and their pacing (pacing.go)

	// Set by Run before any handler runs.
	windows  jetstream.KeyValue
	presence jetstream.KeyValue
	view     *presenceView // who is connected, from a watch of the presence bucket
	logs     jetstream.Stream
}

// New returns a notifier. It reads the webhook secret file, so a missing secret
// fails at start.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Notifier, error) {
	n := &Notifier{cfg: cfg, deps: deps, log: logger.With(zap.String("role", "notifier")),
		members: newMemberCache(), budget: newSenderBudget(cfg.SenderPushRate, cfg.SenderPushBurst),
		opened: newOpenedWindows(cfg.Window), closed: newClosedWindows(),
		blocks: store.NewBlockCache(deps.Store, BlockCacheTTL), passes: newPasses(cfg.LargeChatRate, cfg.Workers/2)}
	n.blockLists = n.blocks
	if m := deps.Metrics; m != nil {
		if err := m.CounterFunc("notifier_push_suppressed_total",
			"Push notifications not sent because their sender was over notifier.sender-push-rate/-burst.",
			func() float64 { return float64(n.budget.suppressed.Load()) }); err != nil {
			return nil, fmt.Errorf("notifier: metrics: %w", err)
		}
		for _, c := range []struct {
			name, help string
			v          *atomic.Int64
		}{
			{"notifier_large_chat_windows_total", "Large-chat coalescing windows closed and handled (notifier.large-chat-members).", &n.large.windows},
			{"notifier_large_chat_batches_total", "Member batches (notifier.batch-size) of large-chat windows handled.", &n.large.batches},
			{"notifier_recipients_over_limit_total", "Members of large chats not notified because a window had more than notifier.max-recipients members.", &n.large.overLimit},
			{"notifier_large_chat_notified_total", "Notifications sent by large-chat passes.", &n.passes.notified},
			{"notifier_large_chat_members_walked_total", "Members of large chats walked by passes (each considered for a notification).", &n.passes.walked},
			{"notifier_large_chat_windows_folded_total", "Large-chat windows folded into a running pass over the same chat instead of starting one.", &n.passes.folded},
		} {
			if err := m.CounterFunc(c.name, c.help, func() float64 { return float64(c.v.Load()) }); err != nil {
				return nil, fmt.Errorf("notifier: metrics: %w", err)
			}
		}
		if err := m.CounterFunc("notifier_large_chat_paced_seconds_total",
			"Time notifications of large-chat passes waited for notifier.large-chat-rate, summed over notifications.",
			func() float64 { return time.Duration(n.passes.pacedNs.Load()).Seconds() }); err != nil {
			return nil, fmt.Errorf("notifier: metrics: %w", err)
		}
		if err := m.GaugeFunc("notifier_large_chat_passes", "Large-chat passes running now (at most max(1, notifier.workers/2)).",
			func() float64 { r, _ := n.passes.stats(); return float64(r) }); err != nil {
			return nil, fmt.Errorf("notifier: metrics: %w", err)
		}
		if err := m.GaugeFunc("notifier_large_chat_oldest_pass_seconds", "Age of the oldest running large-chat pass, seconds (0: none): how far behind push to large chats is.",
			func() float64 { _, o := n.passes.stats(); return o }); err != nil {
			return nil, fmt.Errorf("notifier: metrics: %w", err)
		}
		if err := m.CounterFunc("notifier_sent_total",
			"Notifications published on natter.notify.<uid> (each also goes to the webhook or NATTER_DLQ), large-chat passes included.",
			func() float64 { return float64(n.sent.Load()) }); err != nil {
			return nil, fmt.Errorf("notifier: metrics: %w", err)
		}
		if err := m.CounterFunc("notifier_push_devices_removed_total",
			"Push devices removed because the webhook receiver answered their token invalid.",
			func() float64 { return float64(n.tokensDropped.Load()) }); err != nil {
			return nil, fmt.Errorf("notifier: metrics: %w", err)
		}
	}
	if cfg.WebhookURL != "" {
		secret, err := ReadSecret(cfg.WebhookSecretFile)
		if err != nil {
			return nil, err
		}
		n.hook = newWebhook(&n.cfg, secret)
	}
	return n, nil
}

// Suppressed returns how many notifications this instance did not open because
// their sender was over its push budget (budget.go).
func (n *Notifier) Suppressed() int64 { return n.budget.suppressed.Load() }

// Sent returns how many notifications this instance has published (each also goes
// to the webhook, or to NATTER_DLQ).
func (n *Notifier) Sent() int64 { return n.sent.Load() }

// ReadSecret reads a webhook secret file; surrounding whitespace is dropped and an
// empty secret is an error.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("notifier: webhook secret: %w", err)
	}
	s := []byte(strings.TrimSpace(string(b)))
	if len(s) == 0 {
		return nil, fmt.Errorf("notifier: webhook secret file %s is empty", path)
	}
	return s, nil
}

// DLQStreamConfig is NATTER_DLQ: notifications that could not be delivered, kept for
// replay.
func DLQStreamConfig(s subjects.Subjects, replicas int, maxAge time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        subjects.DLQStream,
		Description: "Natter dead letters: notifications not delivered, for `natter notify replay`",
		Subjects:    []string{s.DLQAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		MaxAge:      maxAge,
		Duplicates:  time.Minute,
	}
}

// Run notifies until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	if _, err := n.deps.JS.CreateOrUpdateStream(ctx, DLQStreamConfig(n.deps.Subjects, n.deps.Replicas, n.cfg.DLQMaxAge)); err != nil {
		return fmt.Errorf("notifier: stream %s: %w", subjects.DLQStream, err)
	}
	var err error
	// The presence role keeps the bucket's configuration; the notifier creates it only
	// if it runs first. (Not updating an existing bucket also keeps stream updates
	// away from the consumers being created on it: nats-server 2.15 races there.)
	if n.presence, err = n.deps.JS.KeyValue(ctx, presencekv.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		n.presence, err = presencekv.Ensure(ctx, n.deps.JS, n.deps.Replicas)
	}
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	presenceStream, err := n.deps.JS.Stream(ctx, presencekv.StreamName)
	if err != nil {
		return fmt.Errorf("notifier: stream %s: %w", presencekv.StreamName, err)
	}
	n.view = newPresenceView(ctx, n.presence, presenceStream, n.log)
	if n.windows, err = n.deps.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: WindowBucket, Description: "Natter notifier: open coalescing windows per user and chat",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(n.deps.Replicas, 1), LimitMarkerTTL: time.Hour,
	}); err != nil {
		return fmt.Errorf("notifier: bucket %s: %w", WindowBucket, err)
	}
	if n.logs, err = n.deps.JS.Stream(ctx, subjects.LogStream); err != nil {
		return fmt.Errorf("notifier: stream %s: %w", subjects.LogStream, err)
	}
	msgs, err := n.logConsumer(ctx)
	if err != nil {
		return fmt.Errorf("notifier: consumer %s: %w", subjects.NotifierConsumer, err)
	}
	windows, err := n.deps.JS.CreateOrUpdateConsumer(ctx, "KV_"+WindowBucket, jetstream.ConsumerConfig{
		Durable:     subjects.NotifierWindowConsumer,
		Description: "notifier: closed coalescing windows",
		// w.<user>.<chat>: a member's window; c.<chat>: a large chat's (large.go).
		FilterSubjects: []string{"$KV." + WindowBucket + ".w.>", "$KV." + WindowBucket + ".c.>"},
		AckPolicy:      jetstream.AckExplicitPolicy,
		// Each delivery attempt marks the message in progress, so this only has to
		// cover one attempt and one backoff.
		AckWait:       n.cfg.WebhookTimeout + n.cfg.MaxBackoff + 30*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 4 * n.cfg.Workers,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("notifier: consumer %s: %w", subjects.NotifierWindowConsumer, err)
	}
	raw, msgc, winc := make(chan jetstream.Msg), make(chan jetstream.Msg), make(chan jetstream.Msg)
	follower, err := blockchanges.Follow(n.deps.NC, n.deps.Subjects, n.blocks)
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	n.blockLists = follower
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		follower.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		n.view.run(ctx)
	}()
	go func() {
		defer wg.Done()
		n.order(ctx, raw, msgc)
	}()
	for i := 0; i < n.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-msgc:
					n.onMessage(ctx, m)
				case m := <-winc:
					n.onWindow(ctx, m)
				}
			}
		}()
	}
	for _, c := range []struct {
		cons jetstream.Consumer
		out  chan jetstream.Msg
	}{{msgs, raw}, {windows, winc}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.pull(ctx, c.cons, c.out)
		}()
	}
	n.log.Info("notifier started", zap.Bool("webhook", n.hook != nil), zap.Duration("window", n.cfg.Window))
	wg.Wait()
	return nil
}

// FirstStartLookback is how far back the very first notifier of a deployment starts
// reading NATTER_LOG: messages sequenced shortly before it came up (while the
// process was starting) are notified about; older history is not.
var FirstStartLookback = time.Minute

// logConsumer creates or updates the shared consumer of NATTER_LOG. Where it starts
// is fixed when it is first created (FirstStartLookback before now) and kept by every
// later start.
func (n *Notifier) logConsumer(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       subjects.NotifierConsumer,
		Description:   "notifier: sequenced messages to notify about",
		FilterSubject: n.deps.Subjects.LogAll(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: 8 * n.cfg.Workers,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
	}
	start := time.Now().Add(-FirstStartLookback)
	cfg.OptStartTime = &start
	existing, err := n.deps.JS.Consumer(ctx, subjects.LogStream, subjects.NotifierConsumer)
	switch {
	case err == nil:
		ci := existing.CachedInfo()
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = ci.Config.DeliverPolicy, ci.Config.OptStartTime, ci.Config.OptStartSeq
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, err
	}
	return n.deps.JS.CreateOrUpdateConsumer(ctx, subjects.LogStream, cfg)
}

// pull feeds cons's messages to out until ctx ends.
func (n *Notifier) pull(ctx context.Context, cons jetstream.Consumer, out chan<- jetstream.Msg) {
	natsutil.Feed(ctx, cons, 2*n.cfg.Workers, out, n.log)
}

// order hands the log consumer's messages from in to the workers on out, in log
// order, after dropping the cached members of a chat whose membership a message
// changes: so no message sequenced after a membership change is handled with the
// members from before it (workers run concurrently; this runs before them).
func (n *Notifier) order(ctx context.Context, in <-chan jetstream.Msg, out chan<- jetstream.Msg) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-in:
			n.members.observe(m.Data())
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}
}

// opTimeout bounds the handling of one log message.
var opTimeout = 30 * time.Second

// notifiable reports whether m is worth a notification: something a person reads
// (protocol.Readable), not an edit, delete, reaction, system event or key
// distribution.
func notifiable(m *protocol.Message) bool {
	return protocol.Readable(m.MessageType)
}

// windowKey is the key of uid's coalescing window for chat.
func windowKey(uid, chat string) string { return "w." + uid + "." + chat }

// onMessage opens a window for every recipient of m who should hear about it.
func (n *Notifier) onMessage(ctx context.Context, jm jetstream.Msg) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	m, err := protocol.DecodeMessageFrame(jm.Data())
	if err != nil {
		n.log.Error("undecodable log message skipped", zap.String("subject", jm.Subject()), zap.Error(err))
		_ = jm.Term()
		return
	}
	if !notifiable(&m) {
		_ = jm.Ack()
		return
	}
	members, err := n.memberIDs(ctx, m.ChatID)
	switch {
	case err != nil:
	case len(members) > n.cfg.LargeChatMembers:
		err = n.openChatWindow(ctx, &m) // large.go
	default:
		uids, check := n.recipients(ctx, members, m.SenderID)
		err = n.openWindows(ctx, uids, check, &m)
	}
	if err != nil {
		// On shutdown the work is cut short on purpose: the message is redelivered
		// to the next notifier, nothing to warn about. (A timeout is warned about.)
		if !errors.Is(ctx.Err(), context.Canceled) {
			n.log.Warn("notification not scheduled; retrying", zap.String("chat_id", m.ChatID), zap.Uint64("seq", m.Seq), zap.Error(err))
		}
		_ = jm.NakWithDelay(time.Second)
		return
	}
	_ = jm.Ack()
}

// recipientParallel bounds the recipients of one message handled at once.
const recipientParallel = 16

// recipients returns who of members but sender may need a window: everybody the
// presence view shows with no connected device, after a barrier if it shows anyone
// connected (see presenceView). check is true when the view cannot say (not loaded,
// or the barrier failed): then uids are all recipients and each one's presence is to
// be read from the bucket (openWindow).
func (n *Notifier) recipients(ctx context.Context, members []string, sender string) (uids []string, check bool) {
	anyOnline, ok := n.view.anyOnline(members, sender)
	if ok && anyOnline {
		// Someone shows online: make sure the view is not behind a disconnect that
		// happened before this message.
		if err := n.view.sync(ctx); err != nil {
			if ctx.Err() == nil {
				n.log.Debug("presence view not confirmed; reading presence per recipient", zap.Error(err))
			}
			ok = false
		}
	}
	if ok {
		if uids, ok = n.view.offline(members, sender); ok {
			return uids, false
		}
	}
	uids = make([]string, 0, len(members))
	for _, uid := range members {
		if uid != sender {
			uids = append(uids, uid)
		}
	}
	return uids, true
}

// openWindows opens the windows of uids (recipients of m), several at once; with check,
// only of those without a connected device. It returns the first error; windows
// already opened stay open.
func (n *Notifier) openWindows(ctx context.Context, uids []string, check bool, m *protocol.Message) error {
	if len(uids) == 0 {
		return nil
	}
	sem := make(chan struct{}, recipientParallel)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for _, uid := range uids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := n.openWindow(ctx, uid, check, m); err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// openWindow opens uid's window for m's chat unless one is open, uid is connected
// (read from the bucket only with check: otherwise the caller knows uid is not), or
// uid muted the chat.
func (n *Notifier) openWindow(ctx context.Context, uid string, check bool, m *protocol.Message) error {
	key := windowKey(uid, m.ChatID)
	if n.opened.open(key, time.Now()) {
		return nil // open (this instance opened it): this message is folded into it
	}
	if n.closed.covers(key, m.Seq) {
		return nil // a notification decided on this message or a later one (closed.go)
	}
	if check {
		if online, err := n.connected(ctx, uid); err != nil || online {
			return err
		}
	}
	rev := n.closed.take(key) // closed.go; 0: not known
	if rev == 0 {
		if _, err := n.windows.Get(ctx, key); err == nil {
			return nil // already open: this message is folded into it
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("window %s: %w", key, err)
		}
	}
	if muted, err := n.muted(ctx, uid, m.ChatID); err != nil || muted {
		return err
	}
	if blocked, err := n.blockLists.Blocks(ctx, uid, m.SenderID); err != nil || blocked { // blocks.go
		return err
	}
	ok, undo := n.budget.take(m.SenderID) // budget.go
	if !ok {
		return nil // the sender is over its push budget: no push for this one
	}
	start := time.Now()
	err := n.createWindow(ctx, key, rev)
	if err != nil {
		undo() // no window opened by this message: no push charged to the sender
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("open window %s: %w", key, err)
		}
		return nil
	}
	n.opened.opened(key, start)
	return nil
}

// createWindow creates key's window, with one write expecting rev as the key's last
// revision when rev, the revision of its close marker, is known (not 0, closed.go),
// else with the bucket's Create. jetstream.ErrKeyExists: the window is open.
func (n *Notifier) createWindow(ctx context.Context, key string, rev uint64) error {
	ttl := wholeSeconds(n.cfg.Window)
	if rev != 0 {
		err := n.reopen(ctx, key, rev, ttl)
		if !errors.Is(err, errWindowChanged) {
			return err
		}
		// Changed since it closed: Create tells an open window from a closed one.
	}
	_, err := n.windows.Create(ctx, key, nil, jetstream.KeyTTL(ttl))
	return err
}

// online reports whether uid has a connected device now: from the presence view
// after a barrier (as fresh as a read of the bucket), or read from the bucket when
// the view cannot say.
func (n *Notifier) online(ctx context.Context, uid string) (bool, error) {
	if n.view != nil {
		if online, ok := n.view.fresh(ctx, uid); ok {
			return online, nil
		}
	}
	return n.connected(ctx, uid)
}

// connected reports whether uid has a connected device (presence bucket; a user
// never seen has none).
func (n *Notifier) connected(ctx context.Context, uid string) (bool, error) {
	e, err := n.presence.Get(ctx, presencekv.UserKey(uid))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("presence of %s: %w", uid, err)
	}
	var u presencekv.User
	return json.Unmarshal(e.Value(), &u) == nil && u.Devices() > 0, nil
}

// muted reports whether uid's mute of chat is active.
func (n *Notifier) muted(ctx context.Context, uid, chat string) (bool, error) {
	mute, err := n.deps.Store.GetMute(ctx, chat, uid)
	if err != nil {
		return false, fmt.Errorf("mute of %s in %s: %w", uid, chat, err)
	}
	return mute.Active(time.Now()), nil
}

// memberIDs returns chat's member IDs, from the member cache (see memberCache). Of
// a chat with more than notifier.large-chat-members members it returns only the
// first large-chat-members+1 (enough to tell it is large: large.go): a message to a
// 100,000-member chat never reads its whole member list.
func (n *Notifier) memberIDs(ctx context.Context, chat string) ([]string, error) {
	ms, gen, ok := n.members.get(chat)
	if ok {
		return ms, nil
	}
	var out []string
	for after := ""; len(out) <= n.cfg.LargeChatMembers; {
		page, err := n.deps.Store.MembersPage(ctx, chat, after, store.MaxMemberPage)
		if err != nil {
			return nil, fmt.Errorf("members of %s: %w", chat, err)
		}
		for _, m := range page {
			out = append(out, m.UserID)
		}
		if len(page) < store.MaxMemberPage {
			break
		}
		after = page[len(page)-1].UserID
	}
	n.members.add(chat, out, gen)
	return out, nil
}

// Package largechat delivers chats above the large-chat threshold at the gateway.
// The sequencer publishes such a chat's messages once, on its log subject, instead
// of once per member; a gateway holds one subscription per large chat that has a
// connected member there and hands each message to those members' connections.
//
// Which chats are large comes from the large-chats KV bucket, which the sequencer
// maintains and every gateway watches. The package sees the gateway through Deps
// only: the hub's connected users and delivery, the membership cache, a NATS
// subscriber, the bucket and the gateway's parser of system events.
package largechat

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway/internal/kvwatch"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Hub is the part of the gateway's hub large chats use.
type Hub interface {
	// UserIDs returns the users connected here.
	UserIDs() []string
	// Connected reports whether uid has a connection here.
	Connected(uid string) bool
	// Shard is the dispatch channel a chat's log subscription delivers into
	// (the hub then calls Deliver).
	Shard(key string) chan *nats.Msg
	// DeliverToUsers enqueues data to every connection of each of uids.
	DeliverToUsers(uids []string, data []byte)
}

// Members is the part of the gateway's membership cache large chats use.
type Members interface {
	// IsMember returns nil if user is a member of chat.
	IsMember(ctx context.Context, chat, user string) error
	// Forget drops a cached membership (the user was removed).
	Forget(chat, user string)
}

// Subscriber subscribes a channel to a subject (*nats.Conn).
type Subscriber interface {
	ChanSubscribe(subj string, ch chan *nats.Msg) (*nats.Subscription, error)
}

// Events parses the system event of a message frame.
type Events interface {
	// Parse returns the chat and system event of data; ev is nil for a frame that
	// is not a system message with an event, and must not be modified.
	Parse(data []byte) (chat string, ev *protocol.SystemEvent)
}

// Deps are what large chats use of the gateway.
type Deps struct {
	Hub      Hub
	Members  Members
	NC       Subscriber        // subscribes to the log subjects
	KV       kvwatch.KeyValues // the large-chats bucket's home
	Subjects subjects.Subjects
	Events   Events
}

// Chats is one gateway's view of the large chats and its subscriptions to them.
// It is safe for concurrent use.
type Chats struct {
	d   Deps
	log *zap.Logger

	mu     sync.RWMutex // guards the maps
	large  map[string]bool
	counts map[string]int // member counts, as the bucket holds them
	subs   map[string]*largeSub
	byUser map[string]map[string]bool // uid -> large chats joined
}

type largeSub struct {
	sub   *nats.Subscription
	users map[string]bool
	list  []string // users as a slice, built by members; nil after a change. Never modified once set
}

// New returns the large chats of one gateway; Watch starts following the bucket.
func New(d Deps, log *zap.Logger) *Chats {
	return &Chats{d: d, log: log, large: map[string]bool{}, counts: map[string]int{}, subs: map[string]*largeSub{}, byUser: map[string]map[string]bool{}}
}

// Watch follows the large-chats bucket until ctx ends. It returns after the initial
// values are loaded, continuing in a goroutine tracked by wg.
func (l *Chats) Watch(ctx context.Context, wg *sync.WaitGroup) error {
	return kvwatch.Follow(ctx, wg, l.d.KV, l.log, natsutil.LargeChatsBucket, func(e jetstream.KeyValueEntry) {
		if e.Operation() == jetstream.KeyValuePut {
			if n, err := strconv.Atoi(string(e.Value())); err == nil {
				l.mu.Lock()
				l.counts[e.Key()] = n
				l.mu.Unlock()
			}
			l.markLarge(ctx, e.Key())
		} else {
			l.unmarkLarge(e.Key())
		}
	})
}

// Mark puts chat in the large-chats bucket (the sequencer keeps it up to date after).
func (l *Chats) Mark(ctx context.Context, chat string, members int) error {
	kv, err := l.d.KV.KeyValue(ctx, natsutil.LargeChatsBucket)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, chat, []byte(strconv.Itoa(members)))
	return err
}

// markLarge records chat as large and joins every connected member.
func (l *Chats) markLarge(ctx context.Context, chat string) {
	l.mu.Lock()
	already := l.large[chat]
	l.large[chat] = true
	l.mu.Unlock()
	if already {
		return
	}
	for _, uid := range l.d.Hub.UserIDs() {
		if err := l.d.Members.IsMember(ctx, chat, uid); err == nil {
			l.join(chat, uid)
		}
	}
}

// unmarkLarge: the chat went back to per-user fan-out.
func (l *Chats) unmarkLarge(chat string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.large, chat)
	delete(l.counts, chat)
	if ls := l.subs[chat]; ls != nil {
		_ = ls.sub.Unsubscribe()
		for uid := range ls.users {
			delete(l.byUser[uid], chat)
		}
		delete(l.subs, chat)
	}
}

// UserConnected joins uid to the large chats it is a member of. It runs as the
// hub's onFirst, before the hub flushes the new user's subscriptions.
func (l *Chats) UserConnected(uid string) {
	l.mu.RLock()
	chats := make([]string, 0, len(l.large))
	for c := range l.large {
		chats = append(chats, c)
	}
	l.mu.RUnlock()
	for _, chat := range chats {
		if err := l.d.Members.IsMember(context.Background(), chat, uid); err == nil {
			l.join(chat, uid)
		}
	}
	// As for the user subscription, the subscriptions must be active before the
	// client hears connected: the hub, which calls this, flushes after it.
}

// UserGone leaves every large chat uid had joined.
func (l *Chats) UserGone(uid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for chat := range l.byUser[uid] {
		l.leaveLocked(chat, uid)
	}
	delete(l.byUser, uid)
}

func (l *Chats) join(chat, uid string) {
	if !l.d.Hub.Connected(uid) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.large[chat] {
		return
	}
	ls := l.subs[chat]
	if ls == nil {
		sub, err := l.d.NC.ChanSubscribe(l.d.Subjects.Log(chat), l.d.Hub.Shard(chat))
		if err != nil {
			l.log.Warn("large chat subscribe failed", zap.String("chat_id", chat), zap.Error(err))
			return
		}
		_ = sub.SetPendingLimits(-1, -1)
		ls = &largeSub{sub: sub, users: map[string]bool{}}
		l.subs[chat] = ls
	}
	ls.users[uid] = true
	ls.list = nil
	if l.byUser[uid] == nil {
		l.byUser[uid] = map[string]bool{}
	}
	l.byUser[uid][chat] = true
}

func (l *Chats) leaveLocked(chat, uid string) {
	ls := l.subs[chat]
	if ls == nil {
		return
	}
	delete(ls.users, uid)
	ls.list = nil
	if len(ls.users) == 0 {
		_ = ls.sub.Unsubscribe()
		delete(l.subs, chat)
	}
}

// Deliver hands a large chat's log message to its members connected here. A member
// removed by this very message gets it, then leaves the chat: in order with the
// conversation, nothing after the removal reaches them.
func (l *Chats) Deliver(m *nats.Msg) {
	chat := strings.TrimPrefix(m.Subject, l.d.Subjects.Log(""))
	l.d.Hub.DeliverToUsers(l.members(chat), m.Data)
	if _, ev := l.d.Events.Parse(m.Data); ev != nil && (ev.Event == protocol.EventMemberRemoved ||
		ev.Event == protocol.EventMemberLeft || ev.Event == protocol.EventMembersRemoved) {
		gone := ev.Members() // at most protocol.MaxBulkMembers
		for _, u := range gone {
			l.d.Members.Forget(chat, u)
		}
		l.mu.Lock()
		for _, u := range gone {
			l.leaveLocked(chat, u)
			if l.byUser[u] != nil {
				delete(l.byUser[u], chat)
			}
		}
		l.mu.Unlock()
	}
}

// UserMessage watches a user's own deliveries for being added to a large chat: ev
// is the delivery's system event in chat (Events.Parse), read-only.
func (l *Chats) UserMessage(uid, chat string, ev *protocol.SystemEvent) {
	if (ev.Event != protocol.EventMemberAdded && ev.Event != protocol.EventMembersAdded) || !ev.Concerns(uid) {
		return
	}
	l.mu.RLock()
	large := l.large[chat]
	l.mu.RUnlock()
	if large {
		l.join(chat, uid)
	}
}

// members returns the users joined to chat here. The slice is shared between
// deliveries until the next join or leave, so a message to a large chat costs no
// copy of its member set.
func (l *Chats) members(chat string) []string {
	l.mu.RLock()
	ls := l.subs[chat]
	var list []string
	if ls != nil {
		list = ls.list
	}
	l.mu.RUnlock()
	if ls == nil || list != nil {
		return list
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls = l.subs[chat]; ls == nil {
		return nil
	}
	if ls.list == nil {
		ls.list = make([]string, 0, len(ls.users))
		for u := range ls.users {
			ls.list = append(ls.list, u)
		}
	}
	return ls.list
}

// MemberCount returns chat's member count as the large-chats bucket holds it (the
// sequencer's count after the last membership event it sequenced, as this
// gateway's watch last saw it); ok is false for a chat that is not large.
func (l *Chats) MemberCount(chat string) (int, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n, ok := l.counts[chat]
	return n, ok && n > 0
}

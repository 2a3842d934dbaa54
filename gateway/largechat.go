package gateway

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

// largeChats delivers chats above the large-chat threshold. The sequencer publishes
// such a chat's messages once, on its log subject, instead of once per member; this
// gateway holds one subscription per large chat that has a connected member here and
// hands each message to those members' connections.
//
// Which chats are large comes from the large-chats KV bucket, which the sequencer
// maintains and every gateway watches.
type largeChats struct {
	d largeDeps

	mu     sync.RWMutex // guards the maps
	large  map[string]bool
	counts map[string]int // member counts, as the bucket holds them
	subs   map[string]*largeSub
	byUser map[string]map[string]bool // uid -> large chats joined
}

type largeSub struct {
	sub   *nats.Subscription
	users map[string]bool
	list  []string // users as a slice, built by deliver; nil after a change. Never modified once set
}

// largeDeps are what large chats use of the gateway.
type largeDeps struct {
	hub      largeHub
	members  largeMembers
	nc       subscriber        // subscribes to the log subjects
	kvs      kvwatch.KeyValues // the large-chats bucket's home
	subjects subjects.Subjects
	log      *zap.Logger
	events   *sysEvents // the gateway's parser of system events (sysevents.go)
}

// largeHub is the part of the hub large chats use: who is connected, which shard
// a chat's messages go to, and delivery to connected users.
type largeHub interface {
	UserIDs() []string
	connected(uid string) bool
	shard(key string) chan *nats.Msg
	deliverToUsers(uids []string, data []byte)
}

// largeMembers is the part of the membership cache large chats use.
type largeMembers interface {
	IsMember(ctx context.Context, chat, user string) error
	forget(chat, user string)
}

// subscriber subscribes a channel to a subject (*nats.Conn).
type subscriber interface {
	ChanSubscribe(subj string, ch chan *nats.Msg) (*nats.Subscription, error)
}

func newLargeChats(d largeDeps) *largeChats {
	return &largeChats{d: d, large: map[string]bool{}, counts: map[string]int{}, subs: map[string]*largeSub{}, byUser: map[string]map[string]bool{}}
}

// watch follows the large-chats bucket until ctx ends. It returns after the initial
// values are loaded, continuing in a goroutine tracked by wg.
func (l *largeChats) watch(ctx context.Context, wg *sync.WaitGroup) error {
	return kvwatch.Follow(ctx, wg, l.d.kvs, l.d.log, natsutil.LargeChatsBucket, func(e jetstream.KeyValueEntry) {
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

// mark puts chat in the large-chats bucket (the sequencer keeps it up to date after).
func (l *largeChats) mark(ctx context.Context, chat string, members int) error {
	kv, err := l.d.kvs.KeyValue(ctx, natsutil.LargeChatsBucket)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, chat, []byte(strconv.Itoa(members)))
	return err
}

// markLarge records chat as large and joins every connected member.
func (l *largeChats) markLarge(ctx context.Context, chat string) {
	l.mu.Lock()
	already := l.large[chat]
	l.large[chat] = true
	l.mu.Unlock()
	if already {
		return
	}
	for _, uid := range l.d.hub.UserIDs() {
		if err := l.d.members.IsMember(ctx, chat, uid); err == nil {
			l.join(chat, uid)
		}
	}
}

// unmarkLarge: the chat went back to per-user fan-out.
func (l *largeChats) unmarkLarge(chat string) {
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

// userConnected joins uid to the large chats it is a member of. It runs as
// hub.onFirst, before hub.add's flush.
func (l *largeChats) userConnected(uid string) {
	l.mu.RLock()
	chats := make([]string, 0, len(l.large))
	for c := range l.large {
		chats = append(chats, c)
	}
	l.mu.RUnlock()
	for _, chat := range chats {
		if err := l.d.members.IsMember(context.Background(), chat, uid); err == nil {
			l.join(chat, uid)
		}
	}
	// As for the user subscription, the subscriptions must be active before the
	// client hears connected: hub.add, which calls this, flushes after it.
}

// userGone leaves every large chat uid had joined.
func (l *largeChats) userGone(uid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for chat := range l.byUser[uid] {
		l.leaveLocked(chat, uid)
	}
	delete(l.byUser, uid)
}

func (l *largeChats) join(chat, uid string) {
	if !l.d.hub.connected(uid) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.large[chat] {
		return
	}
	ls := l.subs[chat]
	if ls == nil {
		sub, err := l.d.nc.ChanSubscribe(l.d.subjects.Log(chat), l.d.hub.shard(chat))
		if err != nil {
			l.d.log.Warn("large chat subscribe failed", zap.String("chat_id", chat), zap.Error(err))
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

func (l *largeChats) leaveLocked(chat, uid string) {
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

// deliver hands a large chat's log message to its members connected here. A member
// removed by this very message gets it, then leaves the chat: in order with the
// conversation, nothing after the removal reaches them.
func (l *largeChats) deliver(m *nats.Msg) {
	chat := strings.TrimPrefix(m.Subject, l.d.subjects.Log(""))
	l.d.hub.deliverToUsers(l.members(chat), m.Data)
	if _, ev := l.d.events.parse(m.Data); ev != nil && (ev.Event == protocol.EventMemberRemoved ||
		ev.Event == protocol.EventMemberLeft || ev.Event == protocol.EventMembersRemoved) {
		gone := ev.Members() // at most protocol.MaxBulkMembers
		for _, u := range gone {
			l.d.members.forget(chat, u)
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

// userMessage watches a user's own deliveries for being added to a large chat: ev
// is the delivery's system event in chat (sysevents.go), read-only.
func (l *largeChats) userMessage(uid, chat string, ev *protocol.SystemEvent) {
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
func (l *largeChats) members(chat string) []string {
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

// memberCount returns chat's member count as the large-chats bucket holds it (the
// sequencer's count after the last membership event it sequenced, as this
// gateway's watch last saw it); ok is false for a chat that is not large.
func (l *largeChats) memberCount(chat string) (int, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n, ok := l.counts[chat]
	return n, ok && n > 0
}

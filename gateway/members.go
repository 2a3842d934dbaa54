package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// memberCache answers "is user a member of chat" at the edge: every send, edit,
// typing and receipt frame asks it, so it must rarely reach the store (the store
// read was 7 % of the server's CPU under 1:1 load with a 5 s TTL: docs/performance.md,
// "Caches and decoding on the hot path"). Only positive answers are cached (a new
// member is never refused), in an LRU of at most size entries.
//
// How long a positive answer is trusted depends on whether this gateway sees the
// user's membership changes:
//
//   - A user connected here (watch, from the hub's first connection to its last)
//     receives every removal, departure, role change and deletion of their chats on
//     their user subject (the sequencer fans a removal out to the members before
//     it, the removed one included) or, for a large chat, on its log subject. The
//     gateway forgets the answer when one arrives (userDelivery, largechat.Deliver),
//     and when it makes the change itself. So such an answer is kept until a change
//     invalidates it, bounded by watchedMaxAge in case an event was missed (a NATS
//     reconnect, the moment between the user's subscription and its flush).
//   - Anyone else (another user's membership asked for presence, a user whose
//     last connection left) gets ttl, as before: nothing tells this gateway of
//     their changes.
//
// Why a stale positive is safe: this check is an early answer, not the authority.
// The sequencer holds every chat's members in memory, changed in log order as it
// sequences the membership events, and refuses a removed member's send, edit,
// delete or reaction with the same not_member code (sequencer.check); history,
// sync and rights checks ask the store every time (checkFresh). What a stale entry
// could let through for at most watchedMaxAge is a typing indicator or a receipt
// of a user removed while this gateway missed the event.
type memberCache struct {
	st     store.Store
	ttl    time.Duration // trust in the answers for users not watched
	maxAge time.Duration // trust in the answers for watched users (watchedMaxAge)

	mu      sync.Mutex // guards the fields below
	lru     *simplelru.LRU[memberKey, memberEntry]
	watched map[string]uint64 // users connected here -> the generation of their watch
	gen     uint64            // the last watch generation given
	// forgets counts invalidations: an answer read from the store while one
	// happened is not cached, since the store read may predate the change.
	forgets uint64
}

// memberEntry is a cached positive answer.
type memberEntry struct {
	mb  store.Member
	at  time.Time // when the store gave it
	gen uint64    // the user's watch generation when it was read; 0: not watched
}

// watchedMaxAge bounds how long an answer about a watched user is trusted without
// an event: a package variable so tests can shorten it.
var watchedMaxAge = time.Minute

func newMemberCache(st store.Store, size int, ttl time.Duration) *memberCache {
	l, err := simplelru.NewLRU[memberKey, memberEntry](size, nil)
	if err != nil {
		panic(fmt.Sprintf("member cache of size %d: %v", size, err)) // size is a constant > 0
	}
	return &memberCache{st: st, ttl: ttl, maxAge: watchedMaxAge, lru: l, watched: map[string]uint64{}}
}

// memberKey is a cached answer's key: a struct, so a lookup builds no string.
type memberKey struct{ chat, user string }

// watch starts trusting user's answers until invalidated: user's first connection
// arrived here (the hub's OnFirst), so their membership events will.
func (m *memberCache) watch(user string) {
	m.mu.Lock()
	m.gen++
	m.watched[user] = m.gen
	m.mu.Unlock()
}

// unwatch ends watch: user's last connection left, and with it the subscription
// their events came on. Their cached answers fall back to the short TTL; a later
// watch starts a new generation, so an answer cached before it is not trusted
// long either (a removal while the user was away went unseen).
func (m *memberCache) unwatch(user string) {
	m.mu.Lock()
	delete(m.watched, user)
	m.mu.Unlock()
}

// cached returns the cached answer for key, if it is still trusted.
func (m *memberCache) cached(key memberKey, now time.Time) (store.Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lru.Get(key)
	if !ok {
		return store.Member{}, false
	}
	age := now.Sub(e.at)
	if age < m.ttl || e.gen != 0 && m.watched[key.user] == e.gen && age < m.maxAge {
		return e.mb, true
	}
	m.lru.Remove(key)
	return store.Member{}, false
}

// snapshot is what read (below) needs to know, taken before the store read, to
// decide whether its answer may be cached.
func (m *memberCache) snapshot(user string) (gen, forgets uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.watched[user], m.forgets
}

// read asks the store and caches a positive answer unless a change was forgotten
// meanwhile; a negative one drops what was cached.
func (m *memberCache) read(ctx context.Context, key memberKey) (store.Member, error) {
	chat, user := key.chat, key.user
	gen, forgets := m.snapshot(user)
	at := time.Now()
	mb, err := m.st.GetMember(ctx, chat, user)
	if errors.Is(err, store.ErrNotFound) {
		m.mu.Lock()
		m.lru.Remove(key)
		m.mu.Unlock()
		return store.Member{}, protocol.Errorf(protocol.CodeNotMember, "not a member of chat %s", chat)
	}
	if err != nil {
		return store.Member{}, protocol.Errorf(protocol.CodeUnavailable, "membership lookup failed; retry").WithCause(fmt.Errorf("member %s of %s: %w", user, chat, err))
	}
	m.mu.Lock()
	if m.forgets == forgets {
		m.lru.Add(key, memberEntry{mb: mb, at: at, gen: gen})
	}
	m.mu.Unlock()
	return mb, nil
}

// check returns the membership, or a *protocol.Error with CodeNotMember.
func (m *memberCache) check(ctx context.Context, chat, user string) (store.Member, error) {
	key := memberKey{chat, user}
	if mb, ok := m.cached(key, time.Now()); ok {
		return mb, nil
	}
	return m.read(ctx, key)
}

// IsMember is check without the membership (livestate.Membership).
func (m *memberCache) IsMember(ctx context.Context, chat, user string) error {
	_, err := m.check(ctx, chat, user)
	return err
}

// CheckFresh is checkFresh (chats.Members).
func (m *memberCache) CheckFresh(ctx context.Context, chat, user string) (store.Member, error) {
	return m.checkFresh(ctx, chat, user)
}

// Forget is forget (largechat.Members).
func (m *memberCache) Forget(chat, user string) { m.forget(chat, user) }

// forget drops a cached membership: user was removed from chat, left it, had their
// role changed or the chat was deleted (through this gateway, or an event of it
// arrived here).
func (m *memberCache) forget(chat, user string) {
	m.mu.Lock()
	m.forgets++
	m.lru.Remove(memberKey{chat, user})
	m.mu.Unlock()
}

// checkSend is check for a send: when the store cannot answer, the send goes through
// and the sequencer, which holds the authoritative member list in memory, decides.
// Sends keep flowing while the store is down; a non-member's send is still refused
// (by the sequencer, with an error frame).
func (m *memberCache) checkSend(ctx context.Context, chat, user string) error {
	_, err := m.check(ctx, chat, user)
	if err == nil {
		return nil // before errors.As, whose target would escape: no allocation per send
	}
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable {
		return nil
	}
	return err
}

// checkFresh is check asking the store every time, and refreshing (or dropping) the
// cached answer: for reads of a chat's history and for rights checks, where a
// removal must take effect at once on every gateway, whether or not this one saw it.
func (m *memberCache) checkFresh(ctx context.Context, chat, user string) (store.Member, error) {
	return m.read(ctx, memberKey{chat, user})
}

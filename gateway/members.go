package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// memberCache answers "is user a member of chat" at the edge. Only positive answers
// are cached, for a short TTL: a new member is never refused, and a removed member's
// sends are refused by the sequencer, which holds the authoritative view.
type memberCache struct {
	st    store.Store
	cache *expirable.LRU[string, store.Member]
}

func newMemberCache(st store.Store, size int, ttl time.Duration) *memberCache {
	return &memberCache{st: st, cache: expirable.NewLRU[string, store.Member](size, nil, ttl)}
}

// check returns the membership, or a *protocol.Error with CodeNotMember.
func (m *memberCache) check(ctx context.Context, chat, user string) (store.Member, error) {
	key := chat + "\x00" + user
	if mb, ok := m.cache.Get(key); ok {
		return mb, nil
	}
	mb, err := m.st.GetMember(ctx, chat, user)
	if errors.Is(err, store.ErrNotFound) {
		return store.Member{}, protocol.Errorf(protocol.CodeNotMember, "not a member of chat %s", chat)
	}
	if err != nil {
		return store.Member{}, protocol.Errorf(protocol.CodeUnavailable, "membership lookup failed; retry").WithCause(fmt.Errorf("member %s of %s: %w", user, chat, err))
	}
	m.cache.Add(key, mb)
	return mb, nil
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

// forget drops a cached membership (after a removal through this gateway).
func (m *memberCache) forget(chat, user string) { m.cache.Remove(chat + "\x00" + user) }

// checkSend is check for a send: when the store cannot answer, the send goes through
// and the sequencer, which holds the authoritative member list in memory, decides.
// Sends keep flowing while the store is down; a non-member's send is still refused
// (by the sequencer, with an error frame).
func (m *memberCache) checkSend(ctx context.Context, chat, user string) error {
	_, err := m.check(ctx, chat, user)
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable {
		return nil
	}
	return err
}

// checkFresh is check asking the store every time, and refreshing (or dropping) the
// cached answer: for reads of a chat's history and for rights checks, where a
// removal must take effect at once on every gateway, not after the cache's TTL.
func (m *memberCache) checkFresh(ctx context.Context, chat, user string) (store.Member, error) {
	key := chat + "\x00" + user
	mb, err := m.st.GetMember(ctx, chat, user)
	if errors.Is(err, store.ErrNotFound) {
		m.cache.Remove(key)
		return store.Member{}, protocol.Errorf(protocol.CodeNotMember, "not a member of chat %s", chat)
	}
	if err != nil {
		return store.Member{}, protocol.Errorf(protocol.CodeUnavailable, "membership lookup failed; retry").WithCause(fmt.Errorf("member %s of %s: %w", user, chat, err))
	}
	m.cache.Add(key, mb)
	return mb, nil
}

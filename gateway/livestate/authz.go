package livestate

import (
	"context"
	"fmt"

	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// maxChatScan caps how many of a user's chats the shared-chat check looks at.
const maxChatScan = 5000

// mayWatch returns nil if caller may see target's presence: themself, a service, or
// someone sharing a chat with target whom target does not block; else a
// CodeForbidden error (the same for a block, which it does not reveal).
func (p *Presence) mayWatch(ctx context.Context, caller string, service bool, target string) error {
	if caller == target || service {
		return nil
	}
	ok, err := p.shares(ctx, caller, target)
	if err != nil {
		p.log.Warn("shared-chat check failed", zap.String("user_id", caller), zap.Error(err))
		return protocol.Errorf(protocol.CodeUnavailable, "membership lookup failed; retry")
	}
	if ok {
		blocked, err := p.d.Blocks.Blocks(ctx, target, caller)
		if err != nil {
			return err
		}
		ok = !blocked
	}
	if !ok {
		return protocol.Errorf(protocol.CodeForbidden, "no chat shared with %s: presence is visible only to chat partners", target)
	}
	return nil
}

// shares reports whether a and b are members of one chat. Positive answers are cached
// for a minute (like memberships at the edge); negative ones are not, so a new chat
// counts at once.
func (p *Presence) shares(ctx context.Context, a, b string) (bool, error) {
	key := a + "\x00" + b
	if _, ok := p.shared.Get(key); ok {
		return true, nil
	}
	yes := func() (bool, error) {
		p.shared.Add(key, struct{}{})
		p.shared.Add(b+"\x00"+a, struct{}{})
		return true, nil
	}
	// Fast path: their direct chat.
	dm := ids.Direct(a, b)
	if err := p.d.Members.IsMember(ctx, dm, a); err == nil {
		if err := p.d.Members.IsMember(ctx, dm, b); err == nil {
			return yes()
		}
	}
	mine, err := p.chatSet(ctx, a)
	if err != nil {
		return false, err
	}
	const page = 500
	for off := 0; off < maxChatScan; off += page {
		cs, err := p.d.Chats.UserChats(ctx, b, page, off)
		if err != nil {
			return false, fmt.Errorf("chats of %s: %w", b, err)
		}
		for _, c := range cs {
			if _, ok := mine[c.ID]; ok {
				return yes()
			}
		}
		if len(cs) < page {
			break
		}
	}
	return false, nil
}

// chatSet returns the IDs of uid's chats (at most maxChatScan), cached briefly.
func (p *Presence) chatSet(ctx context.Context, uid string) (map[string]struct{}, error) {
	if s, ok := p.chatsOf.Get(uid); ok {
		return s, nil
	}
	s := map[string]struct{}{}
	const page = 500
	for off := 0; off < maxChatScan; off += page {
		cs, err := p.d.Chats.UserChats(ctx, uid, page, off)
		if err != nil {
			return nil, fmt.Errorf("chats of %s: %w", uid, err)
		}
		for _, c := range cs {
			s[c.ID] = struct{}{}
		}
		if len(cs) < page {
			break
		}
	}
	p.chatsOf.Add(uid, s)
	return s, nil
}

package gateway

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/pkg/blockchanges"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Blocking (docs/protocol.md, "Blocking"):
//
//	POST   /api/v1/blocks/{userId}   block a user      (gateway/people)
//	DELETE /api/v1/blocks/{userId}   unblock them
//	GET    /api/v1/blocks            the users the caller blocks
//
// This file holds what the gateway enforces of them.
//
// A user whom another blocks can no longer open a direct chat with the blocker,
// add them to a group (or invite them), send into their direct chat (the
// sequencer's rule, sequencer/blocks.go), see their presence or typing, or cause
// them a notification (notifier/blocks.go). Each gateway and role reads block lists
// through a cache of blockCacheTTL: the gateway that took the block applies it at
// once, the others within that time, except the sequencer and the notifier, which
// follow the changes the gateways announce (announcedBlocks, pkg/blockchanges) and
// apply each to the next message or notification. Blocking also drops the blocked user's pending
// invitations to the blocker.

// blockCacheTTL is how long a gateway trusts a block list it read.
var blockCacheTTL = 2 * time.Second

// errBlocked is the refusal of something the other user's block forbids
// (chats.ErrBlocked).
func errBlocked(other string) error { return chats.ErrBlocked(other) }

// blockUnavailable is the answer when a block list cannot be read: the action is
// refused (a block is a safety feature) and may be retried.
func blockUnavailable(err error) error {
	return protocol.Errorf(protocol.CodeUnavailable, "block list unavailable; retry").WithCause(err)
}

// checkNotBlocked returns errBlocked when other blocks user, and an unavailable
// error when that cannot be read.
func (g *Gateway) checkNotBlocked(ctx context.Context, other, user string) error {
	blocked, err := g.blocks.Blocks(ctx, other, user)
	if err != nil {
		return blockUnavailable(err)
	}
	if blocked {
		return errBlocked(other)
	}
	return nil
}

// directPeer returns the other member of a direct chat user is in, "" for a group
// (or a chat user is not in).
func (g *Gateway) directPeer(ctx context.Context, chat, user string) (string, error) {
	if !strings.HasPrefix(chat, "dm-") { // ids.Direct; group IDs have no '-'
		return "", nil
	}
	ms, err := g.typing.MemberIDs(ctx, chat)
	if err != nil {
		return "", err
	}
	if len(ms) != 2 || !slices.Contains(ms, user) {
		return "", nil
	}
	if ms[0] == user {
		return ms[1], nil
	}
	return ms[0], nil
}

// checkDirectSend refuses early (for a synchronous REST answer) a message of
// sender into a direct chat whose other member blocks them; the sequencer applies
// the same rule to every send (sequencer/blocks.go), so a failed lookup here lets
// the message on to it.
func (g *Gateway) checkDirectSend(ctx context.Context, chat, sender, messageType string) error {
	if messageType == protocol.TypeSystem || messageType == protocol.TypeDelete {
		return nil
	}
	peer, err := g.directPeer(ctx, chat, sender)
	if err != nil || peer == "" {
		return nil
	}
	if blocked, err := g.blocks.Blocks(ctx, peer, sender); err == nil && blocked {
		return errBlocked(peer)
	}
	return nil
}

// announcedBlocks is the gateway's block cache as people.BlockCache: a block or
// unblock made here is applied here at once and announced (pkg/blockchanges) to
// the sequencer, which then applies it to the next message it decides, before the
// change is answered.
type announcedBlocks struct {
	cache *store.BlockCache
	nc    *nats.Conn
	subj  subjects.Subjects
	log   *zap.Logger
}

// Forget drops blocker's cached list here and announces the change.
func (a announcedBlocks) Forget(blocker string) {
	a.cache.Forget(blocker)
	if err := blockchanges.Announce(a.nc, a.subj, blocker); err != nil {
		a.log.Warn("block change not announced: the sequencer applies it within its cache's TTL",
			zap.String("user_id", blocker), zap.Error(err))
	}
}

package gateway

import (
	"context"

	"github.com/natter-chat/natter/gateway/livestate"
	"github.com/natter-chat/natter/pkg/store"
)

// newLiveState builds the gateway's presence and typing (gateway/livestate), each
// with exactly the parts of the gateway it uses.
func (g *Gateway) newLiveState() (*livestate.Presence, *livestate.Typing) {
	blocks := blockAnswers{g.blocks}
	p := livestate.NewPresence(g.cfg.Presence, livestate.PresenceDeps{
		NC: g.deps.NC, KV: g.deps.JS, Chats: g.deps.Store, Members: g.members, Blocks: blocks,
		Local: g.hub, Subjects: g.deps.Subjects, Body: g.body(),
	}, g.log)
	t := livestate.NewTyping(g.cfg.Typing, livestate.TypingDeps{
		NC: g.deps.NC, Store: g.deps.Store, Members: g.members, Blocks: blocks, Subjects: g.deps.Subjects,
	}, g.log)
	return p, t
}

// blockAnswers is the block cache as livestate.Blocks: a list that cannot be read
// is the client's answer blockUnavailable.
type blockAnswers struct{ c *store.BlockCache }

func (b blockAnswers) Of(ctx context.Context, blocker string) (map[string]struct{}, error) {
	s, err := b.c.Of(ctx, blocker)
	if err != nil {
		return nil, blockUnavailable(err)
	}
	return s, nil
}

func (b blockAnswers) Blocks(ctx context.Context, blocker, blocked string) (bool, error) {
	yes, err := b.c.Blocks(ctx, blocker, blocked)
	if err != nil {
		return false, blockUnavailable(err)
	}
	return yes, nil
}

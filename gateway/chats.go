package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/gateway/internal/chatchange"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// The path of every change to a chat's members or name (docs/protocol.md, "Chats
// and members"; the routes are gateway/chats', creating a chat is rest.go's):
// announce, below, and the membership watch of the users connected here
// (userDelivery).
//
// A change is a system message sequenced into the chat (a protocol.SystemEvent in
// its meta), so every member sees it in order with the conversation. The gateway
// publishes it to NATTER_IN with the Natter-Service header; the sequencer writes the
// change to the store just before it appends the event to the log, and changes its
// own view of the members as it does (a removed member receives the removal and
// nothing after it). Writing the store there, in log order, rather than here means
// the store can never disagree with the log: a publish that fails changes nothing,
// and one whose acknowledgement was lost is still applied. The call waits until the
// event is sequenced (so the answer reflects the change), up to
// gateway.publish-timeout; if the sequencer is slower it answers 202 and the change
// follows.
//
// Direct chats have exactly their two members and no name: changing them is a
// conflict (409).

// chatChange is the answer to a membership or name change (chatchange.Answer).
type chatChange = chatchange.Answer

// adminOf checks a change to a chat: it must be a group and the caller
// its admin (chats.AdminOf).
func (g *Gateway) adminOf(ctx context.Context, chat string, id auth.Identity) (store.Chat, error) {
	return chats.AdminOf(ctx, g.members, g.deps.Store, chat, id)
}

// announce publishes a membership or name change as a system message of chat sent
// by actor, and waits until the sequencer has sequenced it (and so applied it to the
// store), at most gateway.publish-timeout. Seq is 0 in the answer if the event is
// stored in NATTER_IN but was not sequenced in that time: it will be, unless the
// sequencer refuses it then (the member cap, the last-admin rule: a change
// sequenced first made it impossible). An error means nothing changed.
func (g *Gateway) announce(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatChange, error) {
	meta, err := json.Marshal(ev)
	if err != nil {
		return chatChange{}, err
	}
	m := &protocol.Message{ChatID: chat, MessageID: ids.New(), SenderID: actor, MessageType: protocol.TypeSystem, Meta: meta}
	ch := chatChange{ChatID: chat, MessageID: m.MessageID}
	ack, err := g.publishAndWait(ctx, m, asChange)
	switch {
	case err == nil:
		ch.Seq = ack.Seq
	case errors.Is(err, errNoAnswer):
		// Stored in NATTER_IN: it will be sequenced.
		g.log.Warn("chat change not sequenced in time; it will be", zap.String("chat_id", chat),
			zap.String("event", ev.Event), zap.Duration("waited", g.cfg.PublishTimeout))
	default:
		return ch, err
	}
	return ch, nil
}

// userDelivery sees every message delivered to a user connected here. A removal,
// departure or role change of that user makes this gateway forget its cached
// membership at once (the gateway that made the change did already; the others
// learn it here, not after the cache's TTL). It then lets large chats watch for
// additions (largechat.go).
func (g *Gateway) userDelivery(uid string, data []byte) {
	chat, ev := g.sysEvents.Parse(data) // sysevents.go: one parse per event, not per user
	if ev == nil {
		return
	}
	if ev.Concerns(uid) || ev.Event == protocol.EventChatDeleted {
		switch ev.Event {
		case protocol.EventMemberRemoved, protocol.EventMemberLeft, protocol.EventRoleChanged, protocol.EventChatDeleted, protocol.EventMembersRemoved:
			g.members.forget(chat, uid)
		}
	}
	g.large.UserMessage(uid, chat, ev)
}

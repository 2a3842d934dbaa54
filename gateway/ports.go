package gateway

import (
	"context"
	"sync/atomic"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Ports: the narrow views of the gateway's shared state that its concept packages
// (gateway/media, ...) get in their Deps, so each package's reach is its Deps
// struct, never the whole gateway.

// memberPort is the member cache as a rights check: media.Members.
type memberPort struct{ m *memberCache }

// CheckMember returns nil if user is a member of chat now (memberCache.checkFresh:
// the store is asked, so a removal takes effect at once), else not_member or
// unavailable.
func (p memberPort) CheckMember(ctx context.Context, chat, user string) error {
	_, err := p.m.checkFresh(ctx, chat, user)
	return err
}

// flagsPort is the encrypted-chat cache: media.Chats.
type flagsPort struct{ f *chatFlags }

// Encrypted reports whether chat is end-to-end encrypted; known is false when the
// chat could not be read.
func (p flagsPort) Encrypted(ctx context.Context, chat string) (enc, known bool) {
	return p.f.encrypted(ctx, chat)
}

// keyLimits are the key directory's REST buckets: keys.Limits. A refusal is
// counted as failLimited counts the others'.
type keyLimits struct {
	l       *restLimiter
	limited *atomic.Int64 // metrics.restLimited
}

func (k keyLimits) TakeKeyClaim(user string) error  { return k.take(restKeyClaim, user) }
func (k keyLimits) TakeKeyChange(user string) error { return k.take(restKeyChange, user) }

func (k keyLimits) take(kind restKind, user string) error {
	err := k.l.take(new(restCharge), kind, user, 1)
	countLimited(k.limited, err)
	return err
}

// servicePublisher is the gateway's ingress (publishIngress) as keys.Notices.
type servicePublisher func(ctx context.Context, m *protocol.Message, as sendAs, answered func(*protocol.Frame)) error

// PublishNotice stores m in NATTER_IN as a service's message, waiting for no
// answer: stored is enough.
func (p servicePublisher) PublishNotice(ctx context.Context, m *protocol.Message) error {
	return p(ctx, m, asService, nil)
}

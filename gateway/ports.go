package gateway

import (
	"context"
	"sync/atomic"

	"github.com/natter-chat/natter/gateway/chats"
	"github.com/natter-chat/natter/gateway/erasure"
	"github.com/natter-chat/natter/gateway/keys"
	"github.com/natter-chat/natter/gateway/media"
	"github.com/natter-chat/natter/gateway/memberstate"
	"github.com/natter-chat/natter/gateway/people"
	"github.com/natter-chat/natter/gateway/retention"
	"github.com/natter-chat/natter/gateway/search"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Ports: the narrow views of the gateway's shared state that its concept packages
// (gateway/media, keys, search, people, chats, memberstate, erasure, retention) get in their Deps, so each package's reach
// is its Deps struct, never the whole gateway.

// newConcepts builds the concept packages. It runs in New once the caches, the
// presence watches and the REST limiter exist; the route table mounts their
// handlers.
func (g *Gateway) newConcepts() {
	st, log := g.deps.Store, g.log
	g.media = media.New(g.cfg.Media, media.UploadRate{Rate: g.cfg.Limits.UploadRate, Burst: g.cfg.Limits.UploadBurst},
		media.Deps{Buckets: g.deps.JS, Members: memberPort{g.members}, Chats: flagsPort{g.flags}, History: g.deps.History,
			Avatars: people.AvatarCheck{Store: st}}, log)
	g.keys = keys.New(keys.Deps{Store: st, Limits: keyLimits{g.rest, &g.metrics.restLimited},
		Notices: servicePublisher(g.publishIngress), Body: g.body()}, log)
	searcher, _ := st.(store.Searcher) // nil: search answers 501
	g.search = search.New(search.Deps{Searcher: searcher, Members: memberPort{g.members}}, log)
	g.chats = chats.New(chats.Config{HistoryPageBytes: g.cfg.HistoryPageBytes, MaxGroupMembers: g.cfg.MaxGroupMembers,
		ConsentDirectAdds: g.cfg.Consent.DirectAdds, LargeChatThreshold: g.deps.LargeChatThreshold},
		chats.Deps{Store: st, History: g.deps.History, Members: g.members,
			Sends: sendPort(g.publishAndWait), Limits: chatLimits{g.rest, &g.metrics.restLimited},
			Rules: sendRules{directSend: g.checkDirectSend, flags: g.flags}, Media: g.media,
			Changes: announcer(g.announce), Large: g.large, Invitations: invitationTeller(g.tellInvitation),
			Blocks: blockCheck(g.checkNotBlocked),
			Body:   g.body()}, log)
	groups := groupsPort{roomFor: g.chats.RoomFor, announce: g.announce, members: g.members, tell: g.tellInvitation}
	g.people = people.New(people.Config{DirectAddsDefault: g.cfg.Consent.DirectAdds},
		people.Deps{Store: st, Chats: chatMemberPort{g.members, st}, Avatars: g.media, Blocks: announcedBlocks{g.blocks, g.deps.NC, g.deps.Subjects, log},
			Presence: g.presence, Groups: groups, Body: g.body()}, log)
	g.retention = retention.New(retention.Deps{Store: st, History: g.deps.History,
		Chats: chatRightsPort{chatMemberPort{g.members, st}, g.adminOf}, Groups: groups, Body: g.body()}, log)
	g.memberState = memberstate.New(memberstate.Config{ReceiptsMaxMembers: g.cfg.ReceiptsMaxMembers},
		memberstate.Deps{Store: st, Chats: chatMemberPort{g.members, st}, Body: g.body()}, log)
	g.erasure = erasure.New(erasure.Deps{Store: st, Deny: denyPort{g.deny},
		Groups: memberRemover{announce: g.announce, members: g.members}, Uploads: g.media}, log)
}

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

// chatLimits are the REST buckets of the chat routes: chats.Limits. A refusal is
// counted as failLimited counts the others'.
type chatLimits struct {
	l       *restLimiter
	limited *atomic.Int64 // metrics.restLimited
}

func (p chatLimits) TakePost(user string, service bool) error {
	kind := restPost
	if service {
		kind = restServicePost
	}
	return p.take(kind, user, 1)
}

func (p chatLimits) TakeMemberAdds(user string, service bool, n int) error {
	return p.take(memberAddKind(auth.Identity{UserID: user, Service: service}), user, n)
}

func (p chatLimits) TakeInvites(user string, n int) error { return p.take(restInvite, user, n) }

func (p chatLimits) TakeChatCreate(user string, service bool, members int) (func(), error) {
	var charge restCharge
	if err := p.l.take(&charge, restChatCreate, user, 1); err != nil {
		countLimited(p.limited, err)
		return nil, err
	}
	if err := p.l.take(&charge, memberAddKind(auth.Identity{UserID: user, Service: service}), user, members); err != nil {
		countLimited(p.limited, err)
		return nil, err
	}
	return charge.cancel, nil
}

func (p chatLimits) take(kind restKind, user string, n int) error {
	err := p.l.take(new(restCharge), kind, user, n)
	countLimited(p.limited, err)
	return err
}

// blockCheck is checkNotBlocked (blocks.go) as chats.Blocks.
type blockCheck func(ctx context.Context, other, user string) error

func (p blockCheck) CheckNotBlocked(ctx context.Context, other, user string) error {
	return p(ctx, other, user)
}

// invitationTeller is tellInvitation (consent.go) as chats.Invitations.
type invitationTeller func(inv store.Invitation, state string)

func (p invitationTeller) Tell(inv store.Invitation, state string) { p(inv, state) }

// announcer is the chat-change path (announce, chats.go) as chats.Changes.
type announcer func(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatChange, error)

func (p announcer) Announce(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatChange, error) {
	return p(ctx, chat, actor, ev)
}

// sendPort is publishAndWait (ingress.go) as chats.Sends.
type sendPort func(ctx context.Context, m *protocol.Message, as sendAs) (*protocol.Frame, error)

// PublishAndWait stores m in NATTER_IN, as a user's send or a service's post,
// and returns the sequencer's ack.
func (p sendPort) PublishAndWait(ctx context.Context, m *protocol.Message, service bool) (uint64, bool, error) {
	as := asUser
	if service {
		as = asService
	}
	ack, err := p(ctx, m, as)
	if err != nil {
		return 0, false, err
	}
	return ack.Seq, ack.Duplicate, nil
}

// sendRules are the early refusals of a send (blocks.go, encrypted.go) as
// chats.SendRules.
type sendRules struct {
	directSend func(ctx context.Context, chat, sender, messageType string) error
	flags      *chatFlags
}

func (p sendRules) CheckDirectSend(ctx context.Context, chat, sender, messageType string) error {
	return p.directSend(ctx, chat, sender, messageType)
}

func (p sendRules) CheckType(ctx context.Context, chat, messageType string) error {
	return p.flags.checkType(ctx, chat, messageType)
}

// servicePublisher is the gateway's ingress (publishIngress) as keys.Notices.
type servicePublisher func(ctx context.Context, m *protocol.Message, as sendAs, answered func(*protocol.Frame)) error

// PublishNotice stores m in NATTER_IN as a service's message, waiting for no
// answer: stored is enough.
func (p servicePublisher) PublishNotice(ctx context.Context, m *protocol.Message) error {
	return p(ctx, m, asService, nil)
}

// chatMemberPort is the fresh membership checks as people.Chats and
// memberstate.Chats.
type chatMemberPort struct {
	m  *memberCache
	st store.Store
}

// MemberOf returns nil if chat is an ID of a chat user is a member of now.
func (p chatMemberPort) MemberOf(ctx context.Context, chat, user string) error {
	_, _, err := chats.MemberOf(ctx, p.m, p.st, chat, user)
	return err
}

// CheckMember returns nil if user is a member of chat now
// (memberCache.checkFresh).
func (p chatMemberPort) CheckMember(ctx context.Context, chat, user string) error {
	_, err := p.m.checkFresh(ctx, chat, user)
	return err
}

// denyPort is the deny list as erasure.Deny.
type denyPort struct{ d *denyList }

// Put denies user's tokens from now on (denyList.put).
func (p denyPort) Put(ctx context.Context, user, by string) error { return p.d.put(ctx, user, by) }

// memberRemover is the chat-change path (announce, chats.go) as erasure.Groups.
type memberRemover struct {
	announce func(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatChange, error)
	members  *memberCache
}

// RemoveMember announces member_removed of user in chat by by, then forgets the
// cached membership.
func (p memberRemover) RemoveMember(ctx context.Context, chat, user, by string) error {
	if _, err := p.announce(ctx, chat, by, protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: user, By: by}); err != nil {
		return err
	}
	p.members.forget(chat, user)
	return nil
}

// MakeAdmin announces role_changed of user to admin in chat by by, then forgets
// the cached membership.
func (p memberRemover) MakeAdmin(ctx context.Context, chat, user, by string) error {
	if _, err := p.announce(ctx, chat, by, protocol.SystemEvent{Event: protocol.EventRoleChanged, UserID: user, Role: store.RoleAdmin, By: by}); err != nil {
		return err
	}
	p.members.forget(chat, user)
	return nil
}

// groupsPort is the chat-change path as people.Groups: room in a group
// (chats.Service.RoomFor), announcing a change (chats.go), the member cache and
// invitation frames (consent.go).
type groupsPort struct {
	roomFor  func(ctx context.Context, chat string, n int) error
	announce func(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatChange, error)
	members  *memberCache
	tell     func(inv store.Invitation, state string)
}

func (p groupsPort) RoomFor(ctx context.Context, chat string, n int) error {
	return p.roomFor(ctx, chat, n)
}

func (p groupsPort) Announce(ctx context.Context, chat, actor string, ev protocol.SystemEvent) (chatChange, error) {
	return p.announce(ctx, chat, actor, ev)
}

func (p groupsPort) Forget(chat, user string) { p.members.forget(chat, user) }

func (p groupsPort) TellInvitation(inv store.Invitation, state string) { p.tell(inv, state) }

// chatRightsPort is the membership and admin checks of the chat routes as
// retention.Chats.
type chatRightsPort struct {
	chatMemberPort
	adminOf func(ctx context.Context, chat string, id auth.Identity) (store.Chat, error)
}

// MemberChat returns chat if user is a member of it now (chats.MemberOf).
func (p chatRightsPort) MemberChat(ctx context.Context, chat, user string) (store.Chat, error) {
	c, _, err := chats.MemberOf(ctx, p.m, p.st, chat, user)
	return c, err
}

// AdminChat returns chat if id administers it (chats.AdminOf).
func (p chatRightsPort) AdminChat(ctx context.Context, chat string, id auth.Identity) (store.Chat, error) {
	return p.adminOf(ctx, chat, id)
}

package gateway

import "context"

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

package chats

import (
	"context"
	"fmt"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Consent to being added to a group (docs/protocol.md, "Invitations"). When a user
// adds others to a group (at creation or later), each added user is decided on its
// own by Consent.Decide:
//   - added directly: the adder shares a chat with them, or they allow direct adds
//     (their profile's groupAdds "everyone", or the server's
//     gateway.consent-direct-adds when they did not choose);
//   - invited: anyone else; they accept or decline (gateway/people), and the
//     invitation reaches their devices as an invitation frame;
//   - refused with blocked: they block the adder.
// Service tokens (backend services, the chats:admin scope) add directly.
//
// The view is loaded once for all the users of one request (LoadConsent): who
// blocks the adder (one read), who shares a chat with them (store.SharesChat, a
// bounded number of queries), and the settings of the rest (batches of
// store.MaxProfileBatch), so a bulk add of thousands costs no round trip per user.
// Making the invitations is the gateway's (consent.go).

// ConsentStore is the store calls LoadConsent makes.
type ConsentStore interface {
	Blockers(ctx context.Context, blocked string) ([]string, error)
	SharesChat(ctx context.Context, user string, others []string) (map[string]bool, error)
	Profiles(ctx context.Context, userIDs []string) ([]store.Profile, error)
}

// Decision is what happens to one added user.
type Decision int

const (
	// ConsentAdd: a member now.
	ConsentAdd Decision = iota
	// ConsentInvite: an invitation to accept or decline.
	ConsentInvite
	// ConsentBlocked: refused, they block the adder.
	ConsentBlocked
)

// Consent is what the consent rule needs about one adder and the users being
// added, loaded in bulk by LoadConsent. It is read-only once loaded.
type Consent struct {
	adder         string
	trusted       bool // a service token: every add is direct
	directDefault bool
	blockers      map[string]struct{} // users who block the adder
	shared        map[string]bool     // users who share a chat with the adder
	adds          map[string]string   // groupAdds of the others who set one
}

// LoadConsent loads the consent view of adder (service: a service token) adding
// targets; directDefault is gateway.consent-direct-adds. The error is a
// *protocol.Error (unavailable) when the store fails.
func LoadConsent(ctx context.Context, st ConsentStore, directDefault bool, adder string, service bool, targets []string) (*Consent, error) {
	v := &Consent{adder: adder, trusted: service, directDefault: directDefault}
	if service || len(targets) == 0 {
		return v, nil
	}
	fail := func(err error) (*Consent, error) {
		return nil, protocol.Errorf(protocol.CodeUnavailable, "consent check failed; retry").WithCause(err)
	}
	blockers, err := st.Blockers(ctx, adder)
	if err != nil {
		return fail(fmt.Errorf("blockers of %s: %w", adder, err))
	}
	v.blockers = make(map[string]struct{}, len(blockers))
	for _, b := range blockers {
		v.blockers[b] = struct{}{}
	}
	if v.shared, err = st.SharesChat(ctx, adder, targets); err != nil {
		return fail(err)
	}
	var rest []string
	for _, t := range targets {
		if _, b := v.blockers[t]; !b && !v.shared[t] && t != adder {
			rest = append(rest, t)
		}
	}
	v.adds = map[string]string{}
	for len(rest) > 0 {
		n := min(len(rest), store.MaxProfileBatch)
		ps, err := st.Profiles(ctx, rest[:n])
		if err != nil {
			return fail(err)
		}
		for _, p := range ps {
			if p.GroupAdds != store.GroupAddsDefault {
				v.adds[p.UserID] = p.GroupAdds
			}
		}
		rest = rest[n:]
	}
	return v, nil
}

// Decide is the consent rule for one added user.
func (v *Consent) Decide(target string) Decision {
	if v.trusted || target == v.adder {
		return ConsentAdd
	}
	if _, b := v.blockers[target]; b {
		return ConsentBlocked
	}
	if v.shared[target] {
		return ConsentAdd
	}
	switch v.adds[target] {
	case store.GroupAddsEveryone:
		return ConsentAdd
	case store.GroupAddsContacts:
		return ConsentInvite
	}
	if v.directDefault {
		return ConsentAdd
	}
	return ConsentInvite
}

package chats

import (
	"testing"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// TestConsentDecide is the consent rule's table: blocks first, then a shared
// chat, then the user's own choice, then the server default; services and the
// adder themselves always add.
func TestConsentDecide(t *testing.T) {
	view := func(directDefault, trusted bool) *Consent {
		return &Consent{adder: "alice", trusted: trusted, directDefault: directDefault,
			blockers: map[string]struct{}{"blocker": {}},
			shared:   map[string]bool{"friend": true},
			adds:     map[string]string{"open": store.GroupAddsEveryone, "careful": store.GroupAddsContacts}}
	}
	for _, c := range []struct {
		target                 string
		directDefault, trusted bool
		want                   Decision
	}{
		{"alice", false, false, ConsentAdd},
		{"blocker", false, false, ConsentBlocked},
		{"blocker", true, false, ConsentBlocked},
		{"blocker", false, true, ConsentAdd},
		{"friend", false, false, ConsentAdd},
		{"open", false, false, ConsentAdd},
		{"careful", false, false, ConsentInvite},
		{"careful", true, false, ConsentInvite},
		{"stranger", false, false, ConsentInvite},
		{"stranger", true, false, ConsentAdd},
		{"stranger", false, true, ConsentAdd},
	} {
		require.Equal(t, c.want, view(c.directDefault, c.trusted).Decide(c.target), "%s default=%v service=%v", c.target, c.directDefault, c.trusted)
	}
}

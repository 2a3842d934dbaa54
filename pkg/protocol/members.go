package protocol

import (
	"errors"
	"fmt"

	"github.com/natter-chat/natter/pkg/ids"
)

// Bulk membership changes (docs/protocol.md, "Chats and members"). One REST call
// adds or removes up to MaxBulkMembers members of a group; the change is sequenced
// into the chat as ONE system event naming them all (UserIDs), so a 100,000-member
// group is built with a hundred events rather than a hundred thousand, and every
// member sees the change in order with the conversation, as for the one-member
// events.
const (
	// EventMembersAdded: UserIDs joined the chat with Role ("member" or "admin";
	// empty means "member"). Only users who were not members are named.
	EventMembersAdded = "members_added"
	// EventMembersRemoved: UserIDs were removed by By. Only members are named.
	EventMembersRemoved = "members_removed"
)

// MaxBulkMembers is the most user IDs one bulk change names.
const MaxBulkMembers = 1000

// MaxChangeMetaBytes is the limit on the meta of a chat change event (instead of
// MaxMetaBytes): room for MaxBulkMembers IDs of 64 bytes, quoted and separated,
// and the other fields.
const MaxChangeMetaBytes = 72 << 10

// IsBulkChange reports whether event is a bulk membership change.
func IsBulkChange(event string) bool {
	return event == EventMembersAdded || event == EventMembersRemoved
}

// ErrBadBulkChange (wrapped, with the reason) is a bulk change ValidateBulkChange
// refuses.
var ErrBadBulkChange = errors.New("invalid bulk membership change")

// ValidateBulkChange checks a members_added or members_removed event: 1..
// MaxBulkMembers valid, distinct UserIDs and no UserID; for members_added a role
// of "", "member" or "admin", for members_removed none. The gateway checks what it
// publishes and the sequencer what it sequences with this one function.
func ValidateBulkChange(ev *SystemEvent) error {
	if !IsBulkChange(ev.Event) {
		return fmt.Errorf("%w: event %q is not a bulk change", ErrBadBulkChange, ev.Event)
	}
	if ev.UserID != "" {
		return fmt.Errorf("%w: a bulk change names its members in userIds, not userId", ErrBadBulkChange)
	}
	if len(ev.UserIDs) == 0 || len(ev.UserIDs) > MaxBulkMembers {
		return fmt.Errorf("%w: userIds must hold 1..%d users, not %d", ErrBadBulkChange, MaxBulkMembers, len(ev.UserIDs))
	}
	switch {
	case ev.Event == EventMembersAdded && ev.Role != "" && ev.Role != "member" && ev.Role != "admin":
		return fmt.Errorf(`%w: role must be "member" or "admin"`, ErrBadBulkChange)
	case ev.Event == EventMembersRemoved && ev.Role != "":
		return fmt.Errorf("%w: a removal has no role", ErrBadBulkChange)
	}
	seen := make(map[string]struct{}, len(ev.UserIDs))
	for _, u := range ev.UserIDs {
		if err := ids.Validate("user", u); err != nil {
			return fmt.Errorf("%w: %v", ErrBadBulkChange, err)
		}
		if _, dup := seen[u]; dup {
			return fmt.Errorf("%w: user %s named twice", ErrBadBulkChange, u)
		}
		seen[u] = struct{}{}
	}
	return nil
}

// Concerns reports whether ev (a membership event, bulk or not) names uid.
func (ev *SystemEvent) Concerns(uid string) bool {
	if ev.UserID == uid {
		return uid != ""
	}
	for _, u := range ev.UserIDs {
		if u == uid {
			return true
		}
	}
	return false
}

// Members returns the users ev concerns: UserIDs, or UserID alone.
func (ev *SystemEvent) Members() []string {
	if len(ev.UserIDs) > 0 {
		return ev.UserIDs
	}
	if ev.UserID != "" {
		return []string{ev.UserID}
	}
	return nil
}

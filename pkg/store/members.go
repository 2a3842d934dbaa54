package store

import (
	"context"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Sizes of the bulk membership calls (MemberStore).
const (
	// MaxBulkMembers is the most users one AddMembers, RemoveMembers or
	// MembersAmong call (and one bulk REST call, and one members_added or
	// members_removed event) may name.
	MaxBulkMembers = protocol.MaxBulkMembers
	// MaxMemberPage is the largest page of MembersPage; DefaultMemberPage the
	// page a caller gets when it does not ask.
	MaxMemberPage     = 1000
	DefaultMemberPage = 1000
)

// MemberStore is the membership API of large groups (up to 100,000 members): bulk
// changes and paged reads, so no call reads or writes a whole large chat at once.
type MemberStore interface {
	// AddMembers adds each of ms (all of chat chatID, at most MaxBulkMembers) that is
	// not a member yet, with its Role and JoinedAt. Existing members are left as
	// they are (role and join time): a bulk add never changes a role. Idempotent;
	// on error some of ms may be added, and calling again completes it.
	AddMembers(ctx context.Context, chatID string, ms []Member) error
	// RemoveMembers removes userIDs (at most MaxBulkMembers) from chat; naming a
	// non-member is not an error. Idempotent, as AddMembers.
	RemoveMembers(ctx context.Context, chatID string, userIDs []string) error
	// MembersAmong returns the members of chat among userIDs (at most
	// MaxBulkMembers), ordered by user ID.
	MembersAmong(ctx context.Context, chatID string, userIDs []string) ([]Member, error)
	// MembersPage returns up to limit (1..MaxMemberPage; 0 means
	// DefaultMemberPage) members of chat whose user ID sorts after after (""
	// starts at the first), ordered by user ID. A short page is the last.
	MembersPage(ctx context.Context, chatID, after string, limit int) ([]Member, error)
	// MemberCount returns how many members chat has (0 for an unknown chat).
	MemberCount(ctx context.Context, chatID string) (int, error)
	// ChatMutes returns every mute stored for chat, active or expired, ordered by
	// user ID: what the notifier needs to honour mutes in a large chat with one
	// read rather than one per member.
	ChatMutes(ctx context.Context, chatID string) ([]Mute, error)
}

// pageLimit is limit as MembersPage reads it.
func pageLimit(limit int) int {
	if limit <= 0 {
		return DefaultMemberPage
	}
	return min(limit, MaxMemberPage)
}

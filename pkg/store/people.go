package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/natter-chat/natter/pkg/ids"
)

// People: what Natter keeps about a user beyond their chats (docs/privacy.md):
// a profile (display name, avatar, whether others may add them to groups without
// asking), the users they block, and the group invitations waiting for their
// answer. Identity is never here: a user is the subject of their token.

// Profile is one user's profile. The zero value (only UserID) is a user who never
// set one.
type Profile struct {
	UserID string `json:"userId"`
	// DisplayName is the name shown for the user, at most MaxDisplayName runes
	// (and MaxDisplayNameBytes bytes) with no control or format characters;
	// empty: none (clients show the user ID).
	DisplayName string `json:"displayName,omitempty"`
	// Avatar is the media ID of an image the user uploaded (POST /api/v1/media);
	// empty: none.
	Avatar string `json:"avatar,omitempty"`
	// GroupAdds says whether others may add the user to a group directly: one of
	// GroupAdds*; "" follows the server's default.
	GroupAdds string `json:"groupAdds,omitempty"`
	// UpdatedAt is when the profile was last written (millisecond precision);
	// zero for a user who never set one.
	UpdatedAt time.Time `json:"updatedAt,omitempty"`
}

// Settings of Profile.GroupAdds.
const (
	// GroupAddsDefault follows the server's setting (gateway.consent-direct-adds).
	GroupAddsDefault = ""
	// GroupAddsEveryone lets anyone who is not blocked add the user directly.
	GroupAddsEveryone = "everyone"
	// GroupAddsContacts lets only people the user shares a chat with add them
	// directly; anyone else's add becomes an invitation.
	GroupAddsContacts = "contacts"
)

// Block is one user (Blocker) blocking another (Blocked).
type Block struct {
	Blocker   string    `json:"-"`
	Blocked   string    `json:"userId"`
	CreatedAt time.Time `json:"createdAt"`
}

// Invitation is an add to a group waiting for the invitee's answer.
type Invitation struct {
	ChatID string `json:"chatId"`
	// UserID is the invitee.
	UserID string `json:"userId"`
	// InvitedBy is who tried to add them.
	InvitedBy string `json:"invitedBy"`
	// Role is the role they get on accepting (RoleMember or RoleAdmin).
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// Limits of the people store.
const (
	MaxDisplayName      = 64  // runes
	MaxDisplayNameBytes = 256 // bytes
	// MaxProfileBatch is how many profiles one Profiles call may ask for.
	MaxProfileBatch = 1000
)

// Limits of the people store that the conformance suite lowers (to keep it
// quick); nothing else changes them.
var (
	// MaxBlocks is how many users one user may block; Block refuses more with
	// ErrTooManyBlocks.
	MaxBlocks = 10_000
	// MaxInvitations is how many pending invitations one user may hold;
	// PutInvitation refuses more with ErrTooManyInvitations.
	MaxInvitations = 500
)

// Errors of the people store.
var (
	// ErrBadProfile (wrapped, with the reason) is a profile ValidateProfile refuses.
	ErrBadProfile = errors.New("store: invalid profile")
	// ErrTooManyBlocks is Block's answer for a new block past MaxBlocks.
	ErrTooManyBlocks = errors.New("store: too many blocks")
	// ErrTooManyInvitations is PutInvitation's answer for a new invitation past
	// MaxInvitations.
	ErrTooManyInvitations = errors.New("store: too many pending invitations")
)

// CleanDisplayName trims name and checks it (see Profile.DisplayName); it returns
// ErrBadProfile, wrapped with the reason, for a name it refuses.
func CleanDisplayName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: displayName must be UTF-8", ErrBadProfile)
	}
	if len(name) > MaxDisplayNameBytes || utf8.RuneCountInString(name) > MaxDisplayName {
		return "", fmt.Errorf("%w: displayName is longer than %d characters", ErrBadProfile, MaxDisplayName)
	}
	for _, r := range name {
		// Control and format characters (bidi overrides, zero-width joiners) could
		// make one name pass for another.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "", fmt.Errorf("%w: displayName has a control or format character (U+%04X)", ErrBadProfile, r)
		}
	}
	return name, nil
}

// ValidateProfile checks p's fields: IDs, a clean display name (already trimmed),
// a known GroupAdds.
func ValidateProfile(p Profile) error {
	if err := ids.Validate("user", p.UserID); err != nil {
		return fmt.Errorf("%w: %v", ErrBadProfile, err)
	}
	if clean, err := CleanDisplayName(p.DisplayName); err != nil {
		return err
	} else if clean != p.DisplayName {
		return fmt.Errorf("%w: displayName has leading or trailing space", ErrBadProfile)
	}
	if p.Avatar != "" {
		if err := ids.Validate("media", p.Avatar); err != nil {
			return fmt.Errorf("%w: avatar: %v", ErrBadProfile, err)
		}
	}
	switch p.GroupAdds {
	case GroupAddsDefault, GroupAddsEveryone, GroupAddsContacts:
	default:
		return fmt.Errorf("%w: groupAdds must be %q, %q or empty (the server's default)", ErrBadProfile, GroupAddsEveryone, GroupAddsContacts)
	}
	return nil
}

// PeopleStore is profiles, blocks and invitations. Both stores implement it.
type PeopleStore interface {
	// PutProfile stores p (validated with ValidateProfile), replacing the user's
	// profile whole.
	PutProfile(ctx context.Context, p Profile) error
	// Profiles returns the profiles of userIDs (at most MaxProfileBatch, duplicates
	// allowed), in no particular order, leaving out users who never set one.
	Profiles(ctx context.Context, userIDs []string) ([]Profile, error)

	// Block records that b.Blocker blocks b.Blocked; it reports whether the block
	// is new (blocking again keeps the first CreatedAt). ErrTooManyBlocks past
	// MaxBlocks.
	Block(ctx context.Context, b Block) (created bool, err error)
	// Unblock removes blocker's block of blocked; it reports whether there was one.
	Unblock(ctx context.Context, blocker, blocked string) (bool, error)
	// Blocks returns the users blocker blocks, ordered by the blocked user's ID.
	Blocks(ctx context.Context, blocker string) ([]Block, error)
	// Blockers returns the IDs of the users who block blocked, in no particular
	// order.
	Blockers(ctx context.Context, blocked string) ([]string, error)

	// SharesChat returns which of others are a member of a chat user is a member
	// of: the set holds each such user. It answers for all of others in a bounded
	// number of queries (not one round trip per user where the backend can join).
	SharesChat(ctx context.Context, user string, others []string) (map[string]bool, error)

	// PutInvitation stores inv, replacing an earlier invitation of inv.UserID to
	// inv.ChatID (created false then). ErrTooManyInvitations for a new one past
	// MaxInvitations.
	PutInvitation(ctx context.Context, inv Invitation) (created bool, err error)
	// Invitations returns userID's pending invitations, newest first.
	Invitations(ctx context.Context, userID string) ([]Invitation, error)
	// GetInvitation returns userID's invitation to chatID; ErrNotFound if none.
	GetInvitation(ctx context.Context, userID, chatID string) (Invitation, error)
	// DeleteInvitation removes userID's invitation to chatID; it reports whether
	// there was one.
	DeleteInvitation(ctx context.Context, userID, chatID string) (bool, error)
}

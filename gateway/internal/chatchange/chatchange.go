// Package chatchange is the answer of the routes that change a chat's members or
// name (docs/openapi.yaml, ChatChange): the gateway's chat routes and the
// invitation routes of gateway/people write it.
package chatchange

import (
	"net/http"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/store"
)

// Answer is the answer to a membership or name change.
type Answer struct {
	ChatID string `json:"chatId"`
	// Changed is false when the request asked for what already was (no event).
	Changed bool `json:"changed"`
	// MessageID and Seq identify the system message that announced the change;
	// Seq is 0 while it is not sequenced yet (HTTP 202).
	MessageID string        `json:"messageId,omitempty"`
	Seq       uint64        `json:"seq,omitempty"`
	Member    *store.Member `json:"member,omitempty"`
	Name      *string       `json:"name,omitempty"`
	// Invitation is set when the add became an invitation (gateway/consent.go): the user
	// joins when they accept it (HTTP 202, changed false).
	Invitation *Invitation `json:"invitation,omitempty"`
	// MessageTTL is the chat's message TTL in seconds after a TTL change (0: off).
	MessageTTL *int64 `json:"messageTtl,omitempty"`
	// UserIDs are the users a bulk change added or removed; Skipped those it
	// named that already were (add) or were not (remove) members.
	UserIDs []string `json:"userIds,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
	// Invited are the users a bulk add invited instead of adding (gateway/consent.go).
	Invited []string `json:"invited,omitempty"`
}

// Invitation is one invitation in answers.
type Invitation struct {
	ChatID    string    `json:"chatId"`
	ChatName  string    `json:"chatName,omitempty"`
	InvitedBy string    `json:"invitedBy"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// Invitation frame states (protocol.Frame.State of an invitation frame).
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationDeclined = "declined"
)

// Write answers a change that happened: changed true, with status, or 202 while
// the announcing event is not sequenced yet (Seq 0).
func Write(w http.ResponseWriter, status int, a Answer) {
	a.Changed = true
	if a.Seq == 0 {
		status = http.StatusAccepted
	}
	httpx.WriteJSON(w, status, a)
}

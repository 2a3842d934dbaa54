package protocol

import (
	"encoding/json"
	"fmt"
)

// NATS headers Natter sets on its messages.
const (
	// HeaderSeq on a NATTER_LOG message is its chat sequence number (decimal).
	HeaderSeq = "Natter-Seq"
	// HeaderInSeq on a NATTER_LOG message is the NATTER_IN stream sequence of the
	// ingress message it was sequenced from. With HeaderInTime it tells the
	// sequencer whether a message found sequenced came from that very ingress
	// message (its answer is then not a duplicate): sequencer/ids.go.
	HeaderInSeq = "Natter-In-Seq"
	// HeaderInTime on a NATTER_LOG message is when NATTER_IN stored the ingress
	// message it was sequenced from (unix nanoseconds). A memory NATTER_IN restarts
	// at seq 1 with its server, so the seq alone does not name an ingress message.
	HeaderInTime = "Natter-In-Time"
	// HeaderService on a NATTER_IN message marks it as published by a trusted backend
	// service (the gateway's REST API for services, or pkg/publish): the sequencer
	// skips the membership check. Clients cannot set it: gateways never forward
	// client headers, and NATS permissions keep untrusted publishers off natter.in.
	HeaderService = "Natter-Service"
	// HeaderChange on a NATTER_IN message a gateway published marks a chat change
	// (a system message whose event IsChatChange) that the gateway authorized: its
	// sender is a chat admin, or a service holding the chats:admin scope, and the
	// event's by is that sender. Only such messages change a chat; the sequencer
	// refuses a change without it, and ignores it on the service ingress subjects
	// (subjects.Svc), which backend services publish to.
	HeaderChange = "Natter-Change"
	// HeaderAnswer on a NATTER_IN message is the core subject its publisher waits
	// on for the sequencer's answer: an ack frame with the chat seq once the message
	// is in NATTER_LOG (duplicate: true with the original seq when the chat already
	// held its messageId), or an error frame when it was refused. The sequencer
	// publishes there only if the subject is under the publisher's answer prefix
	// (subjects.Subjects.AnswerAllowed).
	HeaderAnswer = "Natter-Answer"
)

// messageFrame is a message frame on the wire: the type plus the Message's fields.
type messageFrame struct {
	Type string `json:"type"`
	Message
}

// EncodeMessageFrame returns the JSON message frame delivering m. The sequencer
// encodes it once; gateways forward the bytes to clients unchanged.
func EncodeMessageFrame(m *Message) []byte {
	b, err := json.Marshal(messageFrame{Type: FrameMessage, Message: *m})
	if err != nil {
		panic(fmt.Sprintf("protocol: encode message: %v", err))
	}
	return b
}

// DecodeMessageFrame parses a message frame produced by EncodeMessageFrame.
func DecodeMessageFrame(data []byte) (Message, error) {
	var f messageFrame
	if !decodeMessageFast(data, &f.Message, &f.Type) {
		f = messageFrame{}
		if err := json.Unmarshal(data, &f); err != nil {
			return Message{}, fmt.Errorf("decode message frame: %w", err)
		}
	}
	if f.Type != FrameMessage {
		return Message{}, fmt.Errorf("decode message frame: type %q", f.Type)
	}
	return f.Message, nil
}

// EncodeIngress returns the NATTER_IN payload for m (Seq and Timestamp unset).
func EncodeIngress(m *Message) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("protocol: encode ingress: %v", err))
	}
	return b
}

// DecodeIngress parses a NATTER_IN payload.
func DecodeIngress(data []byte) (Message, error) {
	var m Message
	if !decodeMessageFast(data, &m, nil) {
		m = Message{}
		if err := json.Unmarshal(data, &m); err != nil {
			return Message{}, fmt.Errorf("decode ingress: %w", err)
		}
	}
	return m, nil
}

// SystemEvent is the Meta of a system message: a chat membership or metadata change.
type SystemEvent struct {
	Event  string `json:"event"`            // one of the Event* constants
	UserID string `json:"userId,omitempty"` // the member concerned
	// UserIDs are the members concerned by a bulk change (members_added,
	// members_removed; members.go): 1..MaxBulkMembers distinct IDs.
	UserIDs []string `json:"userIds,omitempty"`
	// Total is set only on the copy of a members_added event that an added member
	// of a large chat receives on its own subject (live): its UserIDs then name only
	// that member, and Total is how many users the event added. The event itself,
	// in the log and in history, names them all and has no Total (members.go).
	Total int    `json:"total,omitempty"`
	Role  string `json:"role,omitempty"` // member_added, role_changed
	Name  string `json:"name,omitempty"` // chat_renamed, chat_created
	By    string `json:"by,omitempty"`   // who made the change
	// DeviceID is the device whose keys changed or were revoked
	// (device_keys_changed, device_revoked).
	DeviceID string `json:"deviceId,omitempty"`
	// MessageTTL (message_ttl_changed) is the chat's new message TTL in seconds;
	// 0 turns disappearing messages off.
	MessageTTL int64 `json:"messageTtl,omitempty"`
}

// System event names.
const (
	EventChatCreated   = "chat_created"
	EventMemberAdded   = "member_added"
	EventMemberRemoved = "member_removed"
	EventMemberLeft    = "member_left"
	EventChatRenamed   = "chat_renamed"
	EventRoleChanged   = "role_changed"
	// EventDeviceKeysChanged: UserID's device DeviceID published keys for the
	// first time or a different identity key (docs/e2ee.md). Clients warn and
	// rotate the keys they share with that user.
	EventDeviceKeysChanged = "device_keys_changed"
	// EventDeviceRevoked: UserID's device DeviceID was revoked; it has no keys any
	// more and must receive no new group keys.
	EventDeviceRevoked = "device_revoked"
	// EventMessageTTLChanged sets the chat's message TTL (disappearing messages):
	// messages sequenced after it expire MessageTTL seconds after they are sent.
	EventMessageTTLChanged = "message_ttl_changed"
	// EventChatDeleted deletes a group: its members are removed and its history
	// erased; it is the last message the chat ever has.
	EventChatDeleted = "chat_deleted"
)

// ScopeChatsAdmin is the token scope (claim "scope", space-separated) that lets a
// service token make chat changes (add or remove members, change roles, rename)
// in any group as if it were the chat's admin. Without it a service may post
// (system notices included) but change nothing.
const ScopeChatsAdmin = "chats:admin"

// ScopeAccountsAdmin is the token scope that lets a service token erase accounts
// (DELETE /api/v1/admin/users/{id}, docs/privacy.md). On a user token it means
// nothing.
const ScopeAccountsAdmin = "accounts:admin"

// IsChatChange reports whether a system event named event changes a chat (its
// members, their roles or its name) rather than only telling of something. Such
// events are made only through the REST chat API by a principal allowed to make
// them (docs/security.md, "Principals"); posting one as a message is refused.
func IsChatChange(event string) bool {
	switch event {
	case EventChatCreated, EventMemberAdded, EventMemberRemoved, EventMemberLeft, EventChatRenamed, EventRoleChanged,
		EventMessageTTLChanged, EventChatDeleted, EventMembersAdded, EventMembersRemoved:
		return true
	}
	return false
}

// ChatChangeIn returns the event of a system message's meta when it is a chat
// change (IsChatChange), else "".
func ChatChangeIn(meta []byte) string {
	if len(meta) == 0 {
		return ""
	}
	var ev struct {
		Event string `json:"event"`
	}
	if json.Unmarshal(meta, &ev) != nil || !IsChatChange(ev.Event) {
		return ""
	}
	return ev.Event
}

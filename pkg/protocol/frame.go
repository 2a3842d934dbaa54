package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Frame types, client to server.
const (
	FrameConnect     = "connect"
	FrameSend        = "send"
	FrameSync        = "sync"
	FrameHistory     = "history"
	FrameTyping      = "typing"
	FrameDelivered   = "delivered"
	FrameRead        = "read"
	FramePresenceSub = "presence_sub"
	FrameEdit        = "edit"
	FrameDelete      = "delete"
	FrameReact       = "react"
	FramePing        = "ping"
)

// Frame types, server to client.
const (
	FrameConnected       = "connected"
	FrameAck             = "ack"
	FrameMessage         = "message"
	FrameError           = "error"
	FrameReceipt         = "receipt"
	FrameTypingIndicator = "typing_indicator"
	FramePresenceUpdate  = "presence_update"
	FramePong            = "pong"
	FrameReconnect       = "reconnect"
	FrameHistoryResult   = "history_result"
	FrameSynced          = "synced"
	// FrameInvitation tells a user of a group invitation (state "pending") and of
	// its answer on another device ("accepted", "declined").
	FrameInvitation = "invitation"
)

// Frame is every frame of the protocol, in both directions: a flat JSON object whose
// Type selects which other fields mean something (docs/protocol.md lists them per
// type). Unknown fields are ignored, so clients and servers can add fields.
type Frame struct {
	Type string `json:"type"`
	// ID correlates a request (history, sync, ping) with its answer. Optional.
	ID string `json:"id,omitempty"`

	Token string `json:"token,omitempty"` // connect
	// Resume on connect (or ?resume=1 on the URL) says a sync frame follows: live
	// messages are held until it is answered, so the seam has no gap, duplicate or
	// reordering.
	Resume bool `json:"resume,omitempty"`

	// send, edit, delete, react; also the Message fields of a message frame.
	ChatID      string          `json:"chatId,omitempty"`
	Seq         uint64          `json:"seq,omitempty"`
	MessageID   string          `json:"messageId,omitempty"`
	SenderID    string          `json:"senderId,omitempty"`
	Content     string          `json:"content,omitempty"`
	MessageType string          `json:"messageType,omitempty"`
	Timestamp   int64           `json:"timestamp,omitempty"`
	ReplyTo     string          `json:"replyTo,omitempty"`
	RefID       string          `json:"refId,omitempty"`
	Meta        json.RawMessage `json:"meta,omitempty"`
	Emoji       string          `json:"emoji,omitempty"`  // react
	Remove      bool            `json:"remove,omitempty"` // react: take the reaction back
	// A message frame answering sync carries the message's current state, as
	// history does (Message.Edited, Deleted, Reactions, StateSeq); live ones never do.
	Edited    bool       `json:"edited,omitempty"`
	Deleted   bool       `json:"deleted,omitempty"`
	Reactions []Reaction `json:"reactions,omitempty"`
	StateSeq  uint64     `json:"stateSeq,omitempty"`
	// ExpiresAt: when the message disappears (ms; Message.ExpiresAt).
	ExpiresAt int64 `json:"expiresAt,omitempty"`

	// ack
	Duplicate bool `json:"duplicate,omitempty"`

	// history: Before/After are exclusive seq bounds; Limit caps the page. After is a
	// pointer because "after": 0 (forward from seq 1) and no after (the newest page,
	// backwards) are different requests; nil means absent.
	Before   uint64    `json:"before,omitempty"`
	After    *uint64   `json:"after,omitempty"`
	Limit    int       `json:"limit,omitempty"`
	Messages []Message `json:"messages,omitempty"`
	HasMore  bool      `json:"hasMore,omitempty"`
	// RetainedFrom (history_result, synced chats) is the lowest seq the reader may
	// still read in the chat: seqs below it are gone for them (cleared, expired or
	// erased) and never come back, so a client stops asking for them.
	RetainedFrom uint64 `json:"retainedFrom,omitempty"`

	// sync: the client's last seen seq per chat; synced: the server's last seq per chat.
	Chats []ChatCursor `json:"chats,omitempty"`

	// typing: "start" or "stop".
	State string `json:"state,omitempty"`

	// receipt
	UserID    string `json:"userId,omitempty"`
	Delivered uint64 `json:"delivered,omitempty"`
	Read      uint64 `json:"read,omitempty"`

	// presence_sub / presence_update
	UserIDs  []string `json:"userIds,omitempty"`
	Status   string   `json:"status,omitempty"`
	LastSeen int64    `json:"lastSeen,omitempty"`
	Devices  int      `json:"devices,omitempty"`

	// connected
	ConnID      string `json:"connId,omitempty"`
	ServerTime  int64  `json:"serverTime,omitempty"`
	HeartbeatMs int64  `json:"heartbeatMs,omitempty"`

	// invitation (ChatID, State and Timestamp too): who invited, with what role.
	InvitedBy string `json:"invitedBy,omitempty"`
	Role      string `json:"role,omitempty"`

	// reconnect: wait this long before reconnecting.
	AfterMs int64 `json:"afterMs,omitempty"`

	// error
	Code    Code   `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Retry   bool   `json:"retry,omitempty"`
}

// ChatCursor is one chat's position in sync and synced frames.
type ChatCursor struct {
	ChatID string `json:"chatId"`
	Seq    uint64 `json:"seq"`
	// RetainedFrom (synced only) is Frame.RetainedFrom for this chat; 0 if every
	// seq from 1 may still be read.
	RetainedFrom uint64 `json:"retainedFrom,omitempty"`
}

// DecodeFrame parses one client frame. It returns an *Error with CodeBadRequest for
// malformed JSON, data after the frame's object, or a missing type; it does not check
// that the type is known.
func DecodeFrame(data []byte) (*Frame, error) {
	f := new(Frame)
	if !decodeFrameFast(data, f) {
		*f = Frame{}
		if err := json.Unmarshal(data, f); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) && strings.HasSuffix(se.Error(), "after top-level value") {
				return nil, Errorf(CodeBadRequest, "trailing data after the JSON frame")
			}
			return nil, Errorf(CodeBadRequest, "malformed JSON frame: %v", err)
		}
	}
	if f.Type == "" {
		return nil, Errorf(CodeBadRequest, "frame has no type")
	}
	return f, nil
}

// EncodeFrame returns f as JSON. Fields a frame type always has (docs/asyncapi.yaml
// marks them required) are written even when empty, zero or false: message's
// content, history_result's messages and hasMore, synced's chats, error's retry,
// receipt's delivered and read, presence_update's devices and reconnect's afterMs.
// Every other empty field is left out.
func EncodeFrame(f *Frame) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		// Frame has only marshalable fields; Meta is validated JSON.
		panic(fmt.Sprintf("protocol: encode frame: %v", err))
	}
	// Frame is flat and shared by every type, so omitempty cannot know which empty
	// fields a type requires: add those here, at the end of the object (b always
	// has "type", so a member precedes them).
	switch f.Type {
	case FrameHistoryResult:
		if len(f.Messages) == 0 {
			b = appendMember(b, `"messages":[]`)
		}
		if !f.HasMore {
			b = appendMember(b, `"hasMore":false`)
		}
	case FrameSynced:
		if len(f.Chats) == 0 {
			b = appendMember(b, `"chats":[]`)
		}
	case FrameMessage:
		// As EncodeMessageFrame writes it: content even when empty (system events,
		// tombstones).
		if f.Content == "" {
			b = appendMember(b, `"content":""`)
		}
	case FrameError:
		if !f.Retry {
			b = appendMember(b, `"retry":false`)
		}
	case FrameReceipt:
		if f.Delivered == 0 {
			b = appendMember(b, `"delivered":0`)
		}
		if f.Read == 0 {
			b = appendMember(b, `"read":0`)
		}
	case FramePresenceUpdate:
		if f.Devices == 0 {
			b = appendMember(b, `"devices":0`)
		}
	case FrameReconnect:
		if f.AfterMs == 0 {
			b = appendMember(b, `"afterMs":0`)
		}
	}
	return b
}

// appendMember adds member to the JSON object obj, which has at least one member.
func appendMember(obj []byte, member string) []byte {
	obj = append(obj[:len(obj)-1], ',')
	obj = append(obj, member...)
	return append(obj, '}')
}

// MessageFrame returns the message frame that delivers m.
func MessageFrame(m *Message) *Frame {
	return &Frame{
		Type: FrameMessage, ChatID: m.ChatID, Seq: m.Seq, MessageID: m.MessageID,
		SenderID: m.SenderID, Content: m.Content, MessageType: m.MessageType,
		Timestamp: m.Timestamp, ReplyTo: m.ReplyTo, RefID: m.RefID, Meta: m.Meta,
		Edited: m.Edited, Deleted: m.Deleted, Reactions: m.Reactions, StateSeq: m.StateSeq,
		ExpiresAt: m.ExpiresAt,
	}
}

// ErrorFrame returns the error frame for err: that of the first *Error in its chain
// (errors.As), so a protocol error wrapped with context keeps its code and message;
// anything else becomes CodeInternal, its text not shown to the client.
func ErrorFrame(err error, chatID, messageID, id string) *Frame {
	var pe *Error
	if !errors.As(err, &pe) {
		pe = &Error{Code: CodeInternal, Message: "internal error"}
	}
	return &Frame{Type: FrameError, Code: pe.Code, Message: pe.Message, Retry: pe.Code.Retryable(),
		ChatID: chatID, MessageID: messageID, ID: id}
}

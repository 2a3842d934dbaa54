package notifier

import (
	"encoding/json"
	"strconv"
	"strings"
)

// noteEncoder encodes the notifications of one large-chat pass (large.go) to the
// same bytes as json.Marshal, faster. A pass sends up to 100,000 notifications
// that differ only in the user, the counts, the devices and the time; the JSON of
// the rest (the chat's fields and the last message's preview) is encoded once, by
// encoding/json, and spliced in. The per-user strings are user and chat IDs, which
// need no escaping when they are IDs (pkg/ids: letters, digits, '_' and '-', and
// the '.' of Notification.ID); anything else, and every note with devices, goes
// through encoding/json for that part. FuzzNoteEncoder checks it byte for byte
// against json.Marshal; BenchmarkNoteEncode measures it.
type noteEncoder struct {
	idSuffix string // ".<chat>.<seq>" of Notification.ID
	chat     []byte // `,"chatId":…` through the chat's last field, from encoding/json
	last     []byte // `,"lastMessage":{…}`, from encoding/json
	safe     bool   // idSuffix needs no escaping
}

// noteChat is the chat's part of a Notification: the same fields, names and
// omitempty rules, in the same order.
type noteChat struct {
	ChatID    string `json:"chatId"`
	ChatType  string `json:"chatType,omitempty"`
	ChatName  string `json:"chatName,omitempty"`
	Encrypted bool   `json:"encrypted,omitempty"`
}

// newNoteEncoder returns the encoder of the notifications that share proto's
// chat, last message and ID suffix (proto.ID with its user cut off).
func newNoteEncoder(proto *Notification) *noteEncoder {
	e := &noteEncoder{idSuffix: proto.ID[len(proto.UserID):]}
	c, _ := json.Marshal(noteChat{ChatID: proto.ChatID, ChatType: proto.ChatType, ChatName: proto.ChatName, Encrypted: proto.Encrypted})
	l, _ := json.Marshal(proto.LastMessage)
	e.chat = append([]byte{','}, c[1:len(c)-1]...)
	e.last = append([]byte(`,"lastMessage":`), l...)
	e.safe = plainJSON(e.idSuffix)
	return e
}

// encode returns note's JSON, byte for byte json.Marshal's. note must share the
// encoder's chat, last message and ID suffix.
func (e *noteEncoder) encode(note *Notification) []byte {
	if !e.safe || !plainJSON(note.UserID) || note.Type != TypeMessages || !isID(note.ID, note.UserID, e.idSuffix) {
		b, _ := json.Marshal(note)
		return b
	}
	b := make([]byte, 0, 160+len(e.chat)+len(e.last)+2*len(note.ID))
	b = append(b, `{"id":"`...)
	b = append(b, note.UserID...)
	b = append(b, e.idSuffix...)
	b = append(b, `","type":"`+TypeMessages+`","userId":"`...)
	b = append(b, note.UserID...)
	b = append(b, '"')
	b = append(b, e.chat...)
	b = append(b, `,"count":`...)
	b = strconv.AppendUint(b, note.Count, 10)
	b = append(b, `,"badge":`...)
	b = strconv.AppendUint(b, note.Badge, 10)
	b = append(b, e.last...)
	b = append(b, `,"devices":`...)
	switch {
	case note.Devices == nil:
		b = append(b, "null"...)
	case len(note.Devices) == 0:
		b = append(b, "[]"...)
	default:
		d, _ := json.Marshal(note.Devices)
		b = append(b, d...)
	}
	b = append(b, `,"createdAt":`...)
	b = strconv.AppendInt(b, note.CreatedAt, 10)
	return append(b, '}')
}

// plainJSON reports whether s is encoded by encoding/json as itself: only
// letters, digits and "_-." (what IDs are made of).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isID reports whether id is uid+suffix (without building it).
func isID(id, uid, suffix string) bool {
	return len(id) == len(uid)+len(suffix) && strings.HasPrefix(id, uid) && strings.HasSuffix(id, suffix)
}

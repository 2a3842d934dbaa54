package notifier

import (
	"encoding/json"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// encoderNote returns the notification a pass over chat c (last message last)
// sends to uid, and its pass's encoder.
func encoderNote(c store.Chat, last protocol.Message, uid string, count, badge uint64, devs []store.Device, preview int) (*noteEncoder, *Notification) {
	n := &Notifier{cfg: Config{PreviewBytes: preview}}
	t := &chatTail{chat: c, last: &last, shown: &last}
	enc := newNoteEncoder(n.chatNote(t, "u", 0, 0, nil))
	return enc, n.chatNote(t, uid, count, badge, devs)
}

// FuzzNoteEncoder: the pass's encoder gives json.Marshal's bytes for any chat,
// last message, user, counts and devices (escaping, omitempty and empty device
// lists included).
func FuzzNoteEncoder(f *testing.F) {
	f.Add("c1", "group", "Everyone", false, "m1", "alice", "text", "hello <b>&</b>", int64(1700000000000), uint64(7), "u001", uint64(3), uint64(9), "", "", 200)
	f.Add("c-2_x", "direct", "", true, "m\"2", "bob", "encrypted", "", int64(0), uint64(1), "u\u2028", uint64(0), uint64(0), "phone", "tok\\en", 0)
	f.Add("c3", "group", "na\xffme", false, "m3", "carol", "text", "ü€𝄞 long", int64(-1), uint64(1<<63), "", uint64(1), uint64(2), "d", "t", 3)
	f.Fuzz(func(t *testing.T, chatID, kind, name string, encrypted bool, msgID, sender, typ, content string, ts int64, seq uint64,
		uid string, count, badge uint64, device, token string, preview int) {
		if preview < 0 || preview > 1<<12 {
			return
		}
		var devs []store.Device
		if device != "" {
			devs = []store.Device{{DeviceID: device, Platform: "android", Provider: "fcm", Token: token}}
		}
		c := store.Chat{ID: chatID, Kind: kind, Name: name, Encrypted: encrypted}
		last := protocol.Message{ChatID: chatID, Seq: seq, MessageID: msgID, SenderID: sender, MessageType: typ, Content: content, Timestamp: ts}
		enc, note := encoderNote(c, last, uid, count, badge, devs, preview)
		note.CreatedAt = ts
		want, err := json.Marshal(note)
		require.NoError(t, err)
		require.Equal(t, string(want), string(enc.encode(note)))
		note.Devices = nil // as a zero Notification has them
		want, _ = json.Marshal(note)
		require.Equal(t, string(want), string(enc.encode(note)))
	})
}

// BenchmarkNoteEncode: one notification of a large chat's pass, by encoding/json
// and by the pass's encoder.
func BenchmarkNoteEncode(b *testing.B) {
	c := store.Chat{ID: "c0123456789abcdef", Kind: "group", Name: "Everyone in the company"}
	last := protocol.Message{ChatID: c.ID, Seq: 123456, MessageID: "m0123456789abcdef", SenderID: "alice",
		MessageType: "text", Content: "The quarterly all-hands starts in ten minutes in the main hall; remote folks, the link is in the calendar invite.", Timestamp: 1700000000000}
	enc, note := encoderNote(c, last, "u0000000042", 3, 17, nil, 200)
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			note.Badge = uint64(i)
			_, _ = json.Marshal(note)
		}
	})
	b.Run("noteEncoder", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			note.Badge = uint64(i)
			_ = enc.encode(note)
		}
	})
}

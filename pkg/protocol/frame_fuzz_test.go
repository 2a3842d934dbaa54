package protocol

import (
	"bytes"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/ids"
)

// FuzzDecodeFrame checks the frame decoder on hostile input: it never panics, every
// refusal is a stable bad_request, a chat ID that passes validation carries no NATS
// subject metacharacter, and an accepted frame round-trips: encoding it and decoding
// the result gives the same encoding. The seed corpus is testdata/fuzz/FuzzDecodeFrame
// (run as a normal test); explore with go test -fuzz FuzzDecodeFrame ./pkg/protocol.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","id":"1"}`,
		`{"type":"send","chatId":"c1","messageId":"m1","content":"hi","meta":{"a":[1,2]}}`,
		`{"type":"sync","chats":[{"chatId":"a.>","seq":1}]}`,
		`{"type":"send",`, `[1]`, `null`, `{"type":""}`, `{"type":"ping"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeFrame(data)
		if err != nil {
			pe, ok := err.(*Error)
			if !ok || pe.Code != CodeBadRequest {
				t.Fatalf("DecodeFrame(%q): want a bad_request *Error, got %#v", data, err)
			}
			return
		}
		if fr.Type == "" {
			t.Fatalf("DecodeFrame(%q) accepted a frame without a type", data)
		}
		for _, id := range []string{fr.ChatID, fr.MessageID, fr.ReplyTo, fr.RefID} {
			if ids.Valid(id) && strings.ContainsAny(id, ".*> \t\r\n\x00") {
				t.Fatalf("ID %q passed validation with a subject metacharacter", id)
			}
		}
		enc := EncodeFrame(fr)
		again, err := DecodeFrame(enc)
		if err != nil {
			t.Fatalf("re-decoding %q (from %q): %v", enc, data, err)
		}
		if enc2 := EncodeFrame(again); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip differs:\n%s\n%s", enc, enc2)
		}
	})
}

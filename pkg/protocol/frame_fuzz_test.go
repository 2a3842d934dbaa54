package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
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
		`{"type":"history","after":0}`, `{"type":"history_result","messages":[]}`, `{"type":"error","retry":false}`,
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

// FuzzFastDecodeMatchesEncodingJSON holds the fast decoders (decode.go) to their
// contract: whenever one accepts an input, encoding/json accepts it too and gives the
// same value. Explore with go test -fuzz FuzzFastDecodeMatchesEncodingJSON ./pkg/protocol.
func FuzzFastDecodeMatchesEncodingJSON(f *testing.F) {
	meta := json.RawMessage(`{"event":"member_added","userId":"bob","n":[1,2.5,{"x":"y\"z"}]}`)
	for _, m := range []*Message{
		{ChatID: "c1", Seq: 18446744073709551615, MessageID: "m1", SenderID: "u", Content: "héllo ✓ 👍", MessageType: TypeText, Timestamp: 1_800_000_000_000},
		{ChatID: "c1", MessageID: "m2", SenderID: "u", Content: "a \"quoted\"\n line", MessageType: TypeSystem, Meta: meta, Edited: true, Deleted: true},
		{ChatID: "c1", MessageID: "m3", SenderID: "u", MessageType: TypeReact, RefID: "m1", ReplyTo: "m0", Meta: json.RawMessage(`[]`),
			Reactions: []Reaction{{Emoji: ":+1:", Count: 2, Me: true}}},
	} {
		f.Add(EncodeMessageFrame(m))
		f.Add(EncodeIngress(m))
		f.Add(EncodeFrame(MessageFrame(m)))
	}
	for _, s := range []string{
		`{"type":"ping","id":"1"}`, ` { "type" : "send" , "chatId":"c","limit":-12,"before":0,"resume":true } `,
		`{"type":"send","chatId":"c","seq":01}`, `{"type":"send","seq":1.0}`, `{"type":"send","seq":1e2}`, `{"type":"x","timestamp":-0}`,
		`{"type":"x","devices":1234567890}`, `{"type":"x","ChatId":"c"}`, `{"type":"x","chatId":"c","chatId":"d"}`,
		`{"type":"x","meta":{"a":1}}` + "\n", `{"type":"x","meta":{"a":}}`, `{"type":"x","meta":null}`, `{"type":"x","meta":"s"}`,
		`{"type":"x","content":"\u00e9"}`, "{\"type\":\"x\",\"content\":\"\xff\"}", `{"type":"x","retry":true,"code":"bad_request"}`,
		`{"type":"x"}]`, `{"type":"x"} {}`, `{}`, `{"type":"x",}`, `{"type":"x","userIds":["a"]}`, `{"type":"message","seq":-1}`,
		`{"type":"history","after":0}`, `{"type":"history","after":7,"after":null}`, `{"type":"history","after":null}`,
		`{"type":"history","after":-1}`, `{"type":"history","after":18446744073709551615}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast Frame
		if decodeFrameFast(data, &fast) {
			var ref Frame
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatalf("frame %q: fast path accepted, encoding/json: %v", data, err)
			}
			if !reflect.DeepEqual(fast, ref) {
				t.Fatalf("frame %q:\nfast %#v\njson %#v", data, fast, ref)
			}
		}
		var m Message
		if decodeMessageFast(data, &m, nil) {
			var ref Message
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatalf("message %q: fast path accepted, encoding/json: %v", data, err)
			}
			if !reflect.DeepEqual(m, ref) {
				t.Fatalf("message %q:\nfast %#v\njson %#v", data, m, ref)
			}
		}
		var mf messageFrame
		if decodeMessageFast(data, &mf.Message, &mf.Type) {
			var ref messageFrame
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatalf("message frame %q: fast path accepted, encoding/json: %v", data, err)
			}
			if !reflect.DeepEqual(mf, ref) {
				t.Fatalf("message frame %q:\nfast %#v\njson %#v", data, mf, ref)
			}
		}
	})
}

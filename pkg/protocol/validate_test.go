package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateMessage(t *testing.T) {
	text := func() *Message {
		return &Message{ChatID: "c1", MessageID: "m1", SenderID: "alice", Content: "hi", MessageType: TypeText}
	}
	op := func(typ string) func(m *Message) {
		return func(m *Message) { m.MessageType, m.RefID, m.Content = typ, "m0", "" }
	}
	for _, tc := range []struct {
		name string
		mod  func(m *Message)
		code Code // "": valid
	}{
		{"text", func(m *Message) {}, ""},
		{"meta only", func(m *Message) { m.Content, m.Meta = "", json.RawMessage(`{"k":1}`) }, ""},
		{"custom type", func(m *Message) { m.MessageType = "poll_v2" }, ""},
		{"reply", func(m *Message) { m.ReplyTo = "m0" }, ""},
		{"content at the limit", func(m *Message) { m.Content = strings.Repeat("x", MaxContentBytes) }, ""},
		{"edit", func(m *Message) { op(TypeEdit)(m); m.Content = "fixed" }, ""},
		{"delete", op(TypeDelete), ""},
		{"react", func(m *Message) { op(TypeReact)(m); m.Meta = json.RawMessage(`{"emoji":"👍"}`) }, ""},
		{"react removed", func(m *Message) { op(TypeReact)(m); m.Meta = json.RawMessage(`{"emoji":":tada:","remove":true}`) }, ""},

		{"chat with a dot", func(m *Message) { m.ChatID = "a.b" }, CodeInvalidID},
		{"chat wildcard", func(m *Message) { m.ChatID = ">" }, CodeInvalidID},
		{"empty chat", func(m *Message) { m.ChatID = "" }, CodeInvalidID},
		{"empty sender", func(m *Message) { m.SenderID = "" }, CodeInvalidID},
		{"long message id", func(m *Message) { m.MessageID = strings.Repeat("x", 65) }, CodeInvalidID},
		{"bad replyTo", func(m *Message) { m.ReplyTo = "x y" }, CodeInvalidID},
		{"content too large", func(m *Message) { m.Content = strings.Repeat("x", MaxContentBytes+1) }, CodeTooLarge},
		{"meta too large", func(m *Message) {
			m.Meta = json.RawMessage(`{"k":"` + strings.Repeat("x", MaxMetaBytes) + `"}`)
		}, CodeTooLarge},
		{"meta an array", func(m *Message) { m.Meta = json.RawMessage(`[1]`) }, CodeBadRequest},
		{"meta a string", func(m *Message) { m.Meta = json.RawMessage(`"x"`) }, CodeBadRequest},
		{"meta not JSON", func(m *Message) { m.Meta = json.RawMessage(`{`) }, CodeBadRequest},
		{"empty type", func(m *Message) { m.MessageType = "" }, CodeBadRequest},
		{"type with a space", func(m *Message) { m.MessageType = "a b" }, CodeBadRequest},
		{"type with a dot", func(m *Message) { m.MessageType = "a.b" }, CodeBadRequest},
		{"type too long", func(m *Message) { m.MessageType = strings.Repeat("t", MaxMessageTypeBytes+1) }, CodeBadRequest},
		{"nothing to say", func(m *Message) { m.Content = "" }, CodeBadRequest},
		{"refId on text", func(m *Message) { m.RefID = "m0" }, CodeBadRequest},
		{"edit without refId", func(m *Message) { m.MessageType = TypeEdit }, CodeBadRequest},
		{"edit with a bad refId", func(m *Message) { op(TypeEdit)(m); m.Content, m.RefID = "x", "a.b" }, CodeInvalidID},
		{"edit of itself", func(m *Message) { op(TypeEdit)(m); m.Content, m.RefID = "x", "m1" }, CodeBadRequest},
		{"edit without content", op(TypeEdit), CodeBadRequest},
		{"edit with a replyTo", func(m *Message) { op(TypeEdit)(m); m.Content, m.ReplyTo = "x", "m0" }, CodeBadRequest},
		{"delete with content", func(m *Message) { op(TypeDelete)(m); m.Content = "x" }, CodeBadRequest},
		{"delete with meta", func(m *Message) { op(TypeDelete)(m); m.Meta = json.RawMessage(`{}`) }, CodeBadRequest},
		{"react without emoji", op(TypeReact), CodeBadRequest},
		{"react with two emoji", func(m *Message) { op(TypeReact)(m); m.Meta = json.RawMessage(`{"emoji":"👍👍"}`) }, CodeBadRequest},
		{"react with content", func(m *Message) {
			op(TypeReact)(m)
			m.Content, m.Meta = "x", json.RawMessage(`{"emoji":"👍"}`)
		}, CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := text()
			tc.mod(m)
			err := ValidateMessage(m)
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			var perr *Error
			require.True(t, errors.As(err, &perr), "%v is a protocol error", err)
			require.Equal(t, tc.code, perr.Code, perr.Message)
		})
	}
}

func TestMsgID(t *testing.T) {
	require.Equal(t, "c1:m1", MsgID("c1", "m1"))
}

package protocol

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMessageFromSend(t *testing.T) {
	m, err := MessageFromSend("alice", &Frame{ChatID: "c1", MessageID: "m1", Content: "hi"})
	require.NoError(t, err)
	require.Equal(t, &Message{ChatID: "c1", MessageID: "m1", SenderID: "alice", Content: "hi", MessageType: TypeText}, m, "text by default")

	for _, typ := range []string{TypeSystem, TypeEdit, TypeDelete, TypeReact} {
		_, err := MessageFromSend("alice", &Frame{ChatID: "c1", MessageID: "m1", Content: "x", MessageType: typ})
		var pe *Error
		require.ErrorAs(t, err, &pe, typ)
		require.Equal(t, CodeBadRequest, pe.Code, typ)
	}
	_, err = MessageFromSend("alice", &Frame{ChatID: "c.1", MessageID: "m1", Content: "x"})
	require.Error(t, err, "ValidateMessage applies")
}

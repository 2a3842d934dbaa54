package gateway

import (
	"encoding/json"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

// sysEvents answers each frame with its own event, whether or not it is the frame
// it remembers, and nil for frames that carry none.
func TestSysEventsParse(t *testing.T) {
	frame := func(chat string, ev *protocol.SystemEvent, typ string) []byte {
		m := &protocol.Message{ChatID: chat, Seq: 1, MessageID: "m-" + chat, SenderID: "svc", MessageType: typ, Content: "x", Timestamp: 1}
		if ev != nil {
			m.Meta, _ = json.Marshal(ev)
		}
		return protocol.EncodeMessageFrame(m)
	}
	added := frame("c1", &protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: []string{"a", "b"}, By: "svc"}, protocol.TypeSystem)
	left := frame("c2", &protocol.SystemEvent{Event: protocol.EventMemberLeft, UserID: "a", By: "a"}, protocol.TypeSystem)
	var s sysEvents
	for i, tc := range []struct {
		data    []byte
		chat    string
		event   string
		members []string
	}{
		{added, "c1", protocol.EventMembersAdded, []string{"a", "b"}},
		{append([]byte(nil), added...), "c1", protocol.EventMembersAdded, []string{"a", "b"}}, // a copy: remembered
		{left, "c2", protocol.EventMemberLeft, []string{"a"}},
		{added, "c1", protocol.EventMembersAdded, []string{"a", "b"}},
		{frame("c3", nil, protocol.TypeText), "", "", nil},
		{frame("c4", nil, protocol.TypeSystem), "", "", nil}, // a system message without an event
		{[]byte(`{"type":"message","messageType":"system"`), "", "", nil},
	} {
		chat, ev := s.Parse(tc.data)
		if tc.event == "" {
			require.Nil(t, ev, "case %d", i)
			continue
		}
		require.NotNil(t, ev, "case %d", i)
		require.Equal(t, tc.chat, chat, "case %d", i)
		require.Equal(t, tc.event, ev.Event, "case %d", i)
		require.Equal(t, tc.members, ev.Members(), "case %d", i)
	}
}

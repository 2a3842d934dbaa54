package history

import (
	"encoding/json"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

func opMsg(seq uint64, sender, typ, ref, content string, meta any) protocol.Message {
	m := protocol.Message{ChatID: "c", Seq: seq, MessageID: "op", SenderID: sender, MessageType: typ, RefID: ref, Content: content}
	if meta != nil {
		m.Meta, _ = json.Marshal(meta)
	}
	return m
}

func reactMsg(seq uint64, sender, emoji string, remove bool) protocol.Message {
	return opMsg(seq, sender, protocol.TypeReact, "m1", "", protocol.ReactionEvent{Emoji: emoji, Remove: remove})
}

func TestApplyOps(t *testing.T) {
	target := func() protocol.Message {
		return protocol.Message{ChatID: "c", Seq: 1, MessageID: "m1", SenderID: "alice", Content: "hi",
			MessageType: protocol.TypeText, Meta: json.RawMessage(`{"k":1}`)}
	}
	withState := func(stateSeq uint64, rs ...protocol.Reaction) protocol.Message {
		m := target()
		m.StateSeq, m.Reactions = stateSeq, rs
		return m
	}
	for _, tc := range []struct {
		name   string
		page   protocol.Message
		tail   []protocol.Message
		viewer string
		want   func(m *protocol.Message)
	}{
		{name: "edit by the author", page: target(), tail: []protocol.Message{opMsg(2, "alice", protocol.TypeEdit, "m1", "hello", nil)},
			want: func(m *protocol.Message) { m.Content, m.Edited = "hello", true }},
		{name: "edit by someone else is ignored", page: target(), tail: []protocol.Message{opMsg(2, "bob", protocol.TypeEdit, "m1", "x", nil)},
			want: func(m *protocol.Message) {}},
		{name: "the last edit wins", page: target(), tail: []protocol.Message{
			opMsg(2, "alice", protocol.TypeEdit, "m1", "one", nil), opMsg(3, "alice", protocol.TypeEdit, "m1", "two", nil)},
			want: func(m *protocol.Message) { m.Content, m.Edited = "two", true }},
		{name: "already applied by the store", page: withState(2), tail: []protocol.Message{opMsg(2, "alice", protocol.TypeEdit, "m1", "x", nil)},
			want: func(m *protocol.Message) {}},
		{name: "delete makes a tombstone", page: withState(0, protocol.Reaction{Emoji: "👍", Count: 2}),
			tail: []protocol.Message{opMsg(2, "bob", protocol.TypeDelete, "m1", "", nil), opMsg(3, "alice", protocol.TypeEdit, "m1", "x", nil)},
			want: func(m *protocol.Message) {
				m.Content, m.Meta, m.Deleted, m.Reactions = "", nil, true, nil
			}},
		{name: "react adds with Me for the viewer", page: target(), viewer: "bob", tail: []protocol.Message{
			reactMsg(2, "bob", "👍", false), reactMsg(3, "carol", "👍", false), reactMsg(4, "carol", "🎉", false)},
			want: func(m *protocol.Message) {
				m.Reactions = []protocol.Reaction{{Emoji: "👍", Count: 2, Me: true}, {Emoji: "🎉", Count: 1}}
			}},
		{name: "react on top of the store's counts", page: withState(1, protocol.Reaction{Emoji: "👍", Count: 3, Me: true}),
			viewer: "bob", tail: []protocol.Message{reactMsg(2, "bob", "👍", true), reactMsg(3, "dave", "👍", false)},
			want: func(m *protocol.Message) { m.Reactions = []protocol.Reaction{{Emoji: "👍", Count: 3}} }},
		{name: "the viewer's duplicate add is not counted twice", page: withState(1, protocol.Reaction{Emoji: "👍", Count: 1, Me: true}),
			viewer: "bob", tail: []protocol.Message{reactMsg(2, "bob", "👍", false)},
			want: func(m *protocol.Message) { m.Reactions = []protocol.Reaction{{Emoji: "👍", Count: 1, Me: true}} }},
		{name: "the last removal drops the emoji", page: withState(1, protocol.Reaction{Emoji: "👍", Count: 1}, protocol.Reaction{Emoji: "🎉", Count: 1}),
			tail: []protocol.Message{reactMsg(2, "carol", "👍", true)},
			want: func(m *protocol.Message) { m.Reactions = []protocol.Reaction{{Emoji: "🎉", Count: 1}} }},
		{name: "a bad reaction changes nothing", page: target(), tail: []protocol.Message{opMsg(2, "bob", protocol.TypeReact, "m1", "", map[string]string{"emoji": "x"})},
			want: func(m *protocol.Message) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := []protocol.Message{tc.page}
			applyOps(page, tc.tail, tc.viewer)
			want := tc.page
			tc.want(&want)
			got := page[0]
			got.StateSeq, want.StateSeq = 0, 0
			require.Equal(t, want, got)
		})
	}
}

func TestApplyOpsBlanksEditsOfDeletedMessages(t *testing.T) {
	page := []protocol.Message{
		{ChatID: "c", Seq: 2, MessageID: "e1", SenderID: "alice", MessageType: protocol.TypeEdit, RefID: "m1", Content: "secret"},
		{ChatID: "c", Seq: 3, MessageID: "e2", SenderID: "alice", MessageType: protocol.TypeEdit, RefID: "m9", Content: "kept"},
	}
	applyOps(page, []protocol.Message{opMsg(4, "alice", protocol.TypeDelete, "m1", "", nil)}, "")
	require.Empty(t, page[0].Content)
	require.Equal(t, "kept", page[1].Content)
}

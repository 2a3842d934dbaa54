package protocol

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestApplyOp is the table of the message-operation rules: one row per rule and
// per way around it.
func TestApplyOp(t *testing.T) {
	text := OpState{MessageType: TypeText, SenderID: "alice", Seq: 10, Content: "hi"}
	with := func(f func(s *OpState)) OpState {
		s := text
		f(&s)
		return s
	}
	edit := func(seq uint64, sender, content string) Op {
		return Op{Type: TypeEdit, Seq: seq, SenderID: sender, Content: content}
	}
	del := func(seq uint64, sender string) Op { return Op{Type: TypeDelete, Seq: seq, SenderID: sender} }
	react := func(seq uint64, sender string, remove bool) Op {
		return Op{Type: TypeReact, Seq: seq, SenderID: sender, Reaction: ReactionEvent{Emoji: "👍", Remove: remove}}
	}
	tombstone := func(stateSeq uint64) OpState {
		return with(func(s *OpState) { s.Deleted, s.Content, s.StateSeq = true, "", stateSeq })
	}
	for _, tc := range []struct {
		name   string
		target OpState
		op     Op
		want   OpState
		effect OpEffect
	}{
		{"edit by the author", text, edit(11, "alice", "hello"),
			with(func(s *OpState) { s.Content, s.Edited, s.EditSeq, s.StateSeq = "hello", true, 11, 11 }), OpEdited},
		{"edit by another user changes only the state seq", text, edit(11, "bob", "x"),
			with(func(s *OpState) { s.StateSeq = 11 }), OpNone},
		{"a newer edit replaces an older one",
			with(func(s *OpState) { s.Content, s.Edited, s.EditSeq, s.StateSeq = "one", true, 11, 11 }), edit(12, "alice", "two"),
			with(func(s *OpState) { s.Content, s.Edited, s.EditSeq, s.StateSeq = "two", true, 12, 12 }), OpEdited},
		{"an older edit arriving late does not",
			with(func(s *OpState) { s.Content, s.Edited, s.EditSeq, s.StateSeq = "two", true, 12, 12 }), edit(11, "alice", "one"),
			with(func(s *OpState) { s.Content, s.Edited, s.EditSeq, s.StateSeq = "two", true, 12, 12 }), OpNone},
		{"an edit of a deleted message", tombstone(12), edit(13, "alice", "back"), tombstone(13), OpNone},
		{"a late edit of a deleted message", tombstone(12), edit(11, "alice", "back"), tombstone(12), OpNone},
		{"delete by the author", text, del(11, "alice"), tombstone(11), OpDeleted},
		{"delete by someone else (an admin: the sequencer authorized it)", text, del(11, "bob"), tombstone(11), OpDeleted},
		{"delete of an edited message drops the edit",
			with(func(s *OpState) { s.Content, s.Edited, s.EditSeq, s.StateSeq = "two", true, 12, 12 }), del(13, "bob"),
			tombstone(13), OpDeleted},
		{"a late delete still wins", with(func(s *OpState) { s.Content, s.Edited, s.EditSeq, s.StateSeq = "two", true, 12, 12 }),
			del(11, "alice"), tombstone(12), OpDeleted},
		{"delete twice", tombstone(11), del(12, "alice"), tombstone(12), OpDeleted},
		{"react", text, react(11, "bob", false), with(func(s *OpState) { s.StateSeq = 11 }), OpReacted},
		{"take a reaction back", text, react(11, "bob", true), with(func(s *OpState) { s.StateSeq = 11 }), OpReacted},
		{"react to a deleted message", tombstone(11), react(12, "bob", false), tombstone(12), OpNone},
		{"an operation at the target's own seq", text, edit(10, "alice", "x"), text, OpNone},
		{"an operation before the target", text, del(9, "alice"), text, OpNone},
		{"a system message is no target", with(func(s *OpState) { s.MessageType = TypeSystem }), del(11, "alice"),
			with(func(s *OpState) { s.MessageType = TypeSystem }), OpNone},
		{"an operation is no target", with(func(s *OpState) { s.MessageType = TypeEdit }), edit(11, "alice", "x"),
			with(func(s *OpState) { s.MessageType = TypeEdit }), OpNone},
		{"an encrypted message is edited like any", with(func(s *OpState) { s.MessageType = TypeEncrypted }), edit(11, "alice", "ct"),
			with(func(s *OpState) {
				s.MessageType, s.Content, s.Edited, s.EditSeq, s.StateSeq = TypeEncrypted, "ct", true, 11, 11
			}), OpEdited},
		{"state seq never goes down", with(func(s *OpState) { s.StateSeq = 20 }), react(11, "bob", false),
			with(func(s *OpState) { s.StateSeq = 20 }), OpReacted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, effect := ApplyOp(tc.target, tc.op)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.effect, effect)
		})
	}
}

// TestApplyOpOrderIndependent: every order of arrival of the same operations
// (two persisters racing) gives the state that sequence order gives.
func TestApplyOpOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	types := []string{TypeEdit, TypeEdit, TypeDelete, TypeReact}
	users := []string{"alice", "bob"}
	for range 2000 {
		target := OpState{MessageType: TypeText, SenderID: "alice", Seq: 5, Content: "hi"}
		var ops []Op
		for i := range 1 + rng.IntN(6) {
			ops = append(ops, Op{Type: types[rng.IntN(len(types))], Seq: uint64(3*i + 3 + rng.IntN(3)), // unique, rising with i
				SenderID: users[rng.IntN(len(users))], Content: string(rune('a' + i))})
		}
		inOrder := target
		for _, op := range ops { // seqs rise with i
			inOrder, _ = ApplyOp(inOrder, op)
		}
		for range 5 {
			rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
			got := target
			for _, op := range ops {
				got, _ = ApplyOp(got, op)
			}
			if inOrder.Deleted {
				inOrder.EditSeq, got.EditSeq = 0, 0 // a tombstone has no edit
			}
			require.Equal(t, inOrder, got, "ops %+v", ops)
		}
	}
}

func TestOpOf(t *testing.T) {
	m := &Message{MessageType: TypeReact, Seq: 3, SenderID: "bob", RefID: "m1", Meta: []byte(`{"emoji":"👍","remove":true}`)}
	op, ok := OpOf(m)
	require.True(t, ok)
	require.Equal(t, Op{Type: TypeReact, Seq: 3, SenderID: "bob", Reaction: ReactionEvent{Emoji: "👍", Remove: true}}, op)
	op, ok = OpOf(&Message{MessageType: TypeEdit, Seq: 4, SenderID: "alice", RefID: "m1", Content: "new"})
	require.True(t, ok)
	require.Equal(t, Op{Type: TypeEdit, Seq: 4, SenderID: "alice", Content: "new"}, op)
	for name, m := range map[string]*Message{
		"no ref":         {MessageType: TypeDelete, Seq: 3, SenderID: "bob"},
		"not an op":      {MessageType: TypeText, Seq: 3, RefID: "m1"},
		"bad reaction":   {MessageType: TypeReact, Seq: 3, RefID: "m1", Meta: []byte(`{"emoji":"a"}`)},
		"no reaction":    {MessageType: TypeReact, Seq: 3, RefID: "m1"},
		"system message": {MessageType: TypeSystem, Seq: 3, RefID: "m1"},
	} {
		_, ok := OpOf(m)
		require.False(t, ok, name)
	}
}

func TestOpStateSet(t *testing.T) {
	m := Message{MessageType: TypeText, SenderID: "alice", Seq: 2, Content: "hi", Meta: []byte(`{"k":1}`),
		Reactions: []Reaction{{Emoji: "👍", Count: 1}}}
	s, _ := ApplyOp(OpStateOf(&m), Op{Type: TypeEdit, Seq: 3, SenderID: "alice", Content: "new"})
	s.Set(&m)
	require.Equal(t, "new", m.Content)
	require.True(t, m.Edited)
	require.EqualValues(t, 3, m.StateSeq)
	require.NotNil(t, m.Meta, "an edit keeps meta")
	require.Len(t, m.Reactions, 1, "and reactions")
	s, _ = ApplyOp(OpStateOf(&m), Op{Type: TypeDelete, Seq: 4, SenderID: "bob"})
	s.Set(&m)
	require.Equal(t, Message{MessageType: TypeText, SenderID: "alice", Seq: 2, Deleted: true, StateSeq: 4}, m)
}

func TestAdjustReactions(t *testing.T) {
	up := ReactionEvent{Emoji: "👍"}
	down := ReactionEvent{Emoji: "👍", Remove: true}
	party := ReactionEvent{Emoji: "🎉"}
	for _, tc := range []struct {
		name           string
		in             []Reaction
		ev             ReactionEvent
		sender, viewer string
		want           []Reaction
	}{
		{"first reaction, by the viewer", nil, up, "bob", "bob", []Reaction{{Emoji: "👍", Count: 1, Me: true}}},
		{"first reaction, by another", nil, up, "carol", "bob", []Reaction{{Emoji: "👍", Count: 1}}},
		{"no viewer: never Me", nil, up, "carol", "", []Reaction{{Emoji: "👍", Count: 1}}},
		{"another emoji goes last", []Reaction{{Emoji: "👍", Count: 1}}, party, "carol", "bob",
			[]Reaction{{Emoji: "👍", Count: 1}, {Emoji: "🎉", Count: 1}}},
		{"one more", []Reaction{{Emoji: "👍", Count: 1}}, up, "carol", "bob", []Reaction{{Emoji: "👍", Count: 2}}},
		{"the viewer joins", []Reaction{{Emoji: "👍", Count: 1}}, up, "bob", "bob", []Reaction{{Emoji: "👍", Count: 2, Me: true}}},
		{"the viewer again counts once", []Reaction{{Emoji: "👍", Count: 1, Me: true}}, up, "bob", "bob",
			[]Reaction{{Emoji: "👍", Count: 1, Me: true}}},
		{"one less", []Reaction{{Emoji: "👍", Count: 2, Me: true}}, down, "carol", "bob", []Reaction{{Emoji: "👍", Count: 1, Me: true}}},
		{"the viewer takes theirs back", []Reaction{{Emoji: "👍", Count: 2, Me: true}}, down, "bob", "bob",
			[]Reaction{{Emoji: "👍", Count: 1}}},
		{"the viewer had none to take back", []Reaction{{Emoji: "👍", Count: 2}}, down, "bob", "bob",
			[]Reaction{{Emoji: "👍", Count: 2}}},
		{"the last one goes", []Reaction{{Emoji: "🎉", Count: 1}, {Emoji: "👍", Count: 1}}, down, "carol", "bob",
			[]Reaction{{Emoji: "🎉", Count: 1}}},
		{"taking back an emoji nobody used", []Reaction{{Emoji: "🎉", Count: 1}}, down, "carol", "bob",
			[]Reaction{{Emoji: "🎉", Count: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]Reaction(nil), tc.in...)
			got := AdjustReactions(tc.in, tc.ev, tc.sender, tc.viewer)
			require.Equal(t, tc.want, got)
			require.Equal(t, in, tc.in, "the input is not modified")
		})
	}
}

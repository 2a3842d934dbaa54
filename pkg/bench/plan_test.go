package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPlanRecipients(t *testing.T) {
	tests := []struct {
		name                    string
		users, conns, chats, sz int
		senders                 int
		recipients              []int // per chat
		streams                 int
	}{
		{"1:1, one device each", 4, 4, 2, 2, 0, []int{2, 2}, 4},
		{"1:1, two devices each", 4, 8, 2, 2, 0, []int{4, 4}, 4},
		{"group of 3, uneven devices", 3, 4, 1, 3, 0, []int{4}, 3},
		{"fanout, one sender", 5, 5, 1, 5, 1, []int{5}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlan("brun1", tc.users, tc.conns, tc.chats, tc.sz, tc.senders)
			for c := range p.Chats {
				require.Equal(t, tc.recipients[c], p.recipients(c), "chat %d", c)
			}
			require.Equal(t, tc.streams, p.totalStreams())
			total := 0
			for u := range p.Users {
				total += p.devices(u)
			}
			require.Equal(t, tc.conns, total, "every connection belongs to one user")
		})
	}
}

func TestPlanDedupe(t *testing.T) {
	p := newPlan("brun1", 2, 2, 3, 2, 0) // three chats between the same two users
	for i := range p.Chats {
		p.Chats[i].ID = "dm-same"
	}
	p.dedupe()
	require.Len(t, p.Chats, 1)
}

func TestSpan(t *testing.T) {
	covered := 0
	for i := 0; i < 3; i++ {
		lo, hi := span(10, i, 3)
		require.Equal(t, covered, lo)
		covered = hi
	}
	require.Equal(t, 10, covered)
}

func TestMessageIDRoundTrip(t *testing.T) {
	due := time.Unix(1_800_000_000, 123456789)
	id := messageID("babcde", 12345, 987654321, due)
	require.LessOrEqual(t, len(id), 64)
	require.Regexp(t, `^[A-Za-z0-9_-]{1,64}$`, id)
	got, ok := dueOf("babcde", []byte(id))
	require.True(t, ok)
	require.True(t, got.Equal(due))
	for _, other := range []string{"bzzzzz-1-1-1", "babcd", "babcdex-1-2-3", "obabcde-1-2", "babcde-1-2-notnum!"} {
		_, ok := dueOf("babcde", []byte(other))
		require.False(t, ok, other)
	}
}

func TestFrameFields(t *testing.T) {
	f := []byte(`{"type":"message","chatId":"dm-x","seq":42,"messageId":"m-1","senderId":"u","content":"x"}`)
	require.Equal(t, "m-1", string(stringField(f, keyMessageID)))
	require.Equal(t, "dm-x", string(stringField(f, keyChatID)))
	require.EqualValues(t, 42, uintField(f, keySeq))
	require.Nil(t, stringField([]byte(`{"type":"ack"}`), keyMessageID))
	require.Nil(t, stringField([]byte(`{"messageId":"unterminated`), keyMessageID))
	require.Zero(t, uintField([]byte(`{"type":"ack"}`), keySeq))
}

func TestExpandAddrs(t *testing.T) {
	got, err := expandAddrs([]string{"127.0.0.1", "127.0.0.5-7"})
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1", "127.0.0.5", "127.0.0.6", "127.0.0.7"}, got)
	for _, bad := range []string{"localhost", "127.0.0.9-3", "127.0.0.1-300", "x-2"} {
		_, err := expandAddrs([]string{bad})
		require.Error(t, err, bad)
	}
}

func TestResolveDefaultsAndErrors(t *testing.T) {
	c := Config{Mode: "fanout", Members: 50, Embedded: true, Rate: -1, Duration: time.Second, Size: 10}
	require.NoError(t, c.Resolve())
	require.Equal(t, 50, c.Conns)
	require.Equal(t, 1, c.Chats)
	require.Equal(t, 50, c.ChatSize)
	require.Equal(t, 1, c.Senders)

	for name, bad := range map[string]Config{
		"unknown mode":      {Mode: "nope", Embedded: true, Duration: time.Second, Size: 10},
		"no url":            {Mode: "load", Duration: time.Second, Size: 10},
		"users over conns":  {Mode: "load", Embedded: true, Conns: 2, Users: 4, Duration: time.Second, Size: 10},
		"chat too big":      {Mode: "load", Embedded: true, Conns: 2, ChatSize: 3, Duration: time.Second, Size: 10},
		"oversize content":  {Mode: "load", Embedded: true, Duration: time.Second, Size: 1 << 20},
		"bad local addr":    {Mode: "load", Embedded: true, Duration: time.Second, Size: 10, LocalAddrs: []string{"nope"}},
		"publish batch 0":   {Mode: "publish", Embedded: true, Duration: time.Second, Size: 10, Publishers: 1},
		"publish batch big": {Mode: "publish", Embedded: true, Duration: time.Second, Size: 10, Publishers: 1, Batch: 1001},
		"no publishers":     {Mode: "publish", Embedded: true, Duration: time.Second, Size: 10, Batch: 1},
		"publish no nats":   {Mode: "publish", URLs: []string{"ws://127.0.0.1:1/ws"}, Duration: time.Second, Size: 10, Batch: 1, Publishers: 1},
	} {
		require.Error(t, bad.Resolve(), name)
	}
}

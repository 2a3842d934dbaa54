package historyread

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

func TestCapPage(t *testing.T) {
	msgs := make([]protocol.Message, 10)
	for i := range msgs {
		msgs[i] = protocol.Message{ChatID: "c", Seq: uint64(10 - i), MessageID: "m", SenderID: "u", Content: strings.Repeat("x", 1000)}
	}
	one, err := json.Marshal(&msgs[0])
	require.NoError(t, err)
	per := len(one) + 1

	page, more := CapPage(msgs, 10, 0)
	require.Len(t, page, 10, "no cap")
	require.True(t, more, "a full page may have more")
	page, more = CapPage(msgs[:4], 10, 0)
	require.Len(t, page, 4)
	require.False(t, more, "a short page is the last")

	page, more = CapPage(msgs, 10, 3*per)
	require.Len(t, page, 3, "cut at the byte cap")
	require.True(t, more, "a cut page has more")
	require.Equal(t, []uint64{10, 9, 8}, []uint64{page[0].Seq, page[1].Seq, page[2].Seq}, "the messages nearest the cursor")
	page[0].Content = "changed"
	require.NotEqual(t, "changed", msgs[0].Content, "the kept messages are a copy")

	page, more = CapPage(msgs[:2], 50, 10)
	require.Len(t, page, 1, "at least one message, however large")
	require.True(t, more)

	page, more = CapPage(nil, 50, 10)
	require.NotNil(t, page)
	require.Empty(t, page)
	require.False(t, more)
}

func TestRetainedFrom(t *testing.T) {
	page := []protocol.Message{{Seq: 9}, {Seq: 8}, {Seq: 5}}
	for _, c := range []struct {
		name    string
		floor   uint64
		q       store.HistoryQuery
		page    []protocol.Message
		hasMore bool
		want    uint64
	}{
		{"nothing gone", 0, store.HistoryQuery{}, nil, false, 0},
		{"above the floor", 4, store.HistoryQuery{Dir: store.Forward}, nil, false, 5},
		{"backward page reached the oldest left", 0, store.HistoryQuery{}, page, false, 5},
		{"backward page with more says nothing", 0, store.HistoryQuery{}, page, true, 0},
		{"oldest left is seq 1: nothing gone", 0, store.HistoryQuery{}, []protocol.Message{{Seq: 1}}, false, 0},
		{"floor above the oldest message", 6, store.HistoryQuery{}, page, false, 7},
		{"forward pages do not show the start", 0, store.HistoryQuery{Dir: store.Forward}, page, false, 0},
	} {
		require.Equal(t, c.want, RetainedFrom(c.floor, c.q, c.page, c.hasMore), c.name)
	}
}

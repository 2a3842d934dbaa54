package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
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

	page, more := capPage(msgs, 10, 0)
	require.Len(t, page, 10, "no cap")
	require.True(t, more, "a full page may have more")
	page, more = capPage(msgs[:4], 10, 0)
	require.Len(t, page, 4)
	require.False(t, more, "a short page is the last")

	page, more = capPage(msgs, 10, 3*per)
	require.Len(t, page, 3, "cut at the byte cap")
	require.True(t, more, "a cut page has more")
	require.Equal(t, []uint64{10, 9, 8}, []uint64{page[0].Seq, page[1].Seq, page[2].Seq}, "the messages nearest the cursor")
	page[0].Content = "changed"
	require.NotEqual(t, "changed", msgs[0].Content, "the kept messages are a copy")

	page, more = capPage(msgs[:2], 50, 10)
	require.Len(t, page, 1, "at least one message, however large")
	require.True(t, more)

	page, more = capPage(nil, 50, 10)
	require.NotNil(t, page)
	require.Empty(t, page)
	require.False(t, more)
}

package chats

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

func TestListCursorRoundTrip(t *testing.T) {
	c := store.ChatSummary{Chat: store.Chat{ID: "chat_1"}, LastActivity: time.UnixMilli(1700000000123).UTC()}
	cur, err := parseListCursor(listCursor(c))
	require.NoError(t, err)
	require.Equal(t, store.ChatListCursor{Activity: c.LastActivity, ChatID: "chat_1"}, cur)

	for _, bad := range []string{"", "1700000000123", ".chat_1", "-1.chat_1", "1.chat.1", "1.a*b", "12345678901234567890.c", "x.chat_1"} {
		_, err := parseListCursor(bad)
		var pe *protocol.Error
		require.ErrorAs(t, err, &pe, bad)
		require.Equal(t, protocol.CodeBadRequest, pe.Code, bad)
	}
}

func TestNextMemberCursor(t *testing.T) {
	page := []store.Member{{UserID: "a"}, {UserID: "b"}}
	require.Equal(t, "b", NextMemberCursor(page, 2), "a full page has a next")
	require.Empty(t, NextMemberCursor(page, 3), "a short page is the last")
	require.Empty(t, NextMemberCursor(nil, 0))
	require.NotNil(t, NonNilMembers(nil))
}

package apischema

import (
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := New()
	require.NoError(t, err, "docs/asyncapi.yaml and docs/openapi.yaml compile")
	return v
}

func TestOperationMatchesPathTemplates(t *testing.T) {
	v := newValidator(t)
	require.Equal(t, "GET /api/v1/chats/{id}/messages", v.Operation("GET", "/api/v1/chats/c1/messages"))
	require.Equal(t, "DELETE /api/v1/chats/{id}/members/{uid}", v.Operation("DELETE", "/api/v1/chats/c1/members/bob"))
	require.Equal(t, "", v.Operation("PUT", "/api/v1/chats/c1/messages"), "an undocumented method")
	require.Equal(t, "", v.Operation("GET", "/api/v1/nope"))
}

// TestFramesAsSent validates frames exactly as the server encodes them.
func TestFramesAsSent(t *testing.T) {
	v := newValidator(t)
	m := protocol.Message{ChatID: "c1", Seq: 1, MessageID: "m1", SenderID: "alice", Content: "hi",
		MessageType: protocol.TypeText, Timestamp: 1_800_000_000_000}
	for _, raw := range [][]byte{
		protocol.EncodeMessageFrame(&m),
		protocol.EncodeFrame(protocol.MessageFrame(&m)),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameHistoryResult, ID: "h", ChatID: "c1"}),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameHistoryResult, ChatID: "c1", Messages: []protocol.Message{m}, HasMore: true}),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameSynced}),
		protocol.EncodeFrame(protocol.ErrorFrame(protocol.Errorf(protocol.CodeNotMember, "no"), "c1", "m1", "")),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameReceipt, ChatID: "c1", UserID: "bob", Delivered: 2}),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FramePresenceUpdate, UserID: "bob", Status: "offline", LastSeen: 5}),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameReconnect}),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FramePong, ServerTime: 1}),
		protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameConnected, UserID: "a", ConnID: "x", ServerTime: 1, HeartbeatMs: 2}),
	} {
		require.NoError(t, v.Frame(raw), "%s", raw)
	}
}

// TestWrongFramesAreCaught: what the schemas exist for. Each error names the frame
// type and the failing location.
func TestWrongFramesAreCaught(t *testing.T) {
	v := newValidator(t)
	for _, tc := range []struct{ raw, want string }{
		{`{"type":"history_result","chatId":"c1","messages":[]}`, "hasMore"},
		{`{"type":"error","code":"bad_request","message":"x"}`, "retry"},
		{`{"type":"error","code":"made_up","message":"x","retry":false}`, "/code"},
		{`{"type":"message","chatId":"c1","seq":1,"messageId":"m","senderId":"u","content":"","messageType":"text","timestamp":1,"extra":1}`, "extra"},
		{`{"type":"receipt","chatId":"c.>","userId":"u","delivered":1,"read":0}`, "/chatId"},
		{`{"type":"ack","chatId":"c","messageId":"m","surprise":true}`, "surprise"},
		{`{"type":"no_such_frame"}`, "no_such_frame"},
		{`not json`, "not JSON"},
	} {
		err := v.Frame([]byte(tc.raw))
		require.Error(t, err, tc.raw)
		require.Contains(t, err.Error(), tc.want, tc.raw)
	}
}

func TestResponses(t *testing.T) {
	v := newValidator(t)
	ok := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/api/v1/chats/c1/messages", 200, `{"messages":[],"hasMore":false,"cursor":{}}`},
		{"GET", "/api/v1/chats/c1/messages", 403, `{"error":{"code":"not_member","message":"no","retry":false}}`},
		{"POST", "/api/v1/chats/c1/messages", 202, `{"chatId":"c1","messageId":"m1","seq":1,"duplicate":false}`},
		{"GET", "/api/v1/nope", 404, `{"error":{"code":"not_found","message":"no such endpoint","retry":false}}`},
	}
	for _, tc := range ok {
		require.NoError(t, v.Response(tc.method, tc.path, tc.status, "application/json", []byte(tc.body)), tc.body)
	}
	bad := []struct {
		method, path string
		status       int
		body, want   string
	}{
		{"GET", "/api/v1/chats/c1/messages", 200, `{"messages":[],"hasMore":false}`, "cursor"},
		{"GET", "/api/v1/chats/c1/messages", 403, `{"error":{"code":"not_member","message":"no"}}`, "retry"},
		{"GET", "/api/v1/chats/c1/messages", 418, `{}`, "status 418 is not documented"},
		{"GET", "/api/v1/nope", 200, `{}`, "not an operation"},
		{"GET", "/api/v1/chats", 200, `{"chats":[{"id":"c","type":"group","createdBy":"a","createdAt":"2026-01-01T00:00:00Z","lastSeq":1,"readSeq":0,"unread":1,"lastActivity":"2026-01-01T00:00:00Z","secret":1}],"hasMore":false}`, "secret"},
	}
	for _, tc := range bad {
		err := v.Response(tc.method, tc.path, tc.status, "application/json", []byte(tc.body))
		require.Error(t, err, tc.body)
		require.Contains(t, err.Error(), tc.want)
	}
}

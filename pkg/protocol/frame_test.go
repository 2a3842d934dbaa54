package protocol

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHistoryAfterZeroIsNotAbsent: "after": 0 asks for the chat from seq 1, no
// "after" for the newest page; both decoders must keep them apart.
func TestHistoryAfterZeroIsNotAbsent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *uint64
	}{
		{`{"type":"history","chatId":"c","limit":3}`, nil},
		{`{"type":"history","chatId":"c","after":0,"limit":3}`, new(uint64)},
		{`{"type":"history","chatId":"c","after":0,"content":"\u00e9"}`, new(uint64)}, // encoding/json path
		{`{"type":"history","chatId":"c","after":null}`, nil},
	} {
		f, err := DecodeFrame([]byte(tc.in))
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, f.After, tc.in)
	}
	zero := uint64(0)
	require.JSONEq(t, `{"type":"history","after":0}`, string(EncodeFrame(&Frame{Type: FrameHistory, After: &zero})))
	require.JSONEq(t, `{"type":"history"}`, string(EncodeFrame(&Frame{Type: FrameHistory})))
}

// TestEncodeFrameRequiredFields: the fields a frame type always has are on the wire
// even when empty or false.
func TestEncodeFrameRequiredFields(t *testing.T) {
	require.JSONEq(t, `{"type":"history_result","id":"h","chatId":"c","messages":[],"hasMore":false}`,
		string(EncodeFrame(&Frame{Type: FrameHistoryResult, ID: "h", ChatID: "c"})))
	require.JSONEq(t, `{"type":"history_result","chatId":"c","messages":[{"chatId":"c","seq":1,"messageId":"m","senderId":"u","content":"x","messageType":"text"}],"hasMore":true}`,
		string(EncodeFrame(&Frame{Type: FrameHistoryResult, ChatID: "c", HasMore: true,
			Messages: []Message{{ChatID: "c", Seq: 1, MessageID: "m", SenderID: "u", Content: "x", MessageType: TypeText}}})))
	require.JSONEq(t, `{"type":"synced","id":"s","chats":[]}`, string(EncodeFrame(&Frame{Type: FrameSynced, ID: "s"})))
	require.JSONEq(t, `{"type":"error","code":"bad_request","message":"no","retry":false}`,
		string(EncodeFrame(ErrorFrame(Errorf(CodeBadRequest, "no"), "", "", ""))))
	require.JSONEq(t, `{"type":"error","code":"unavailable","message":"later","retry":true}`,
		string(EncodeFrame(ErrorFrame(Errorf(CodeUnavailable, "later"), "", "", ""))))
	require.JSONEq(t, `{"type":"pong","id":"p"}`, string(EncodeFrame(&Frame{Type: FramePong, ID: "p"})))
	require.JSONEq(t, `{"type":"receipt","chatId":"c","userId":"u","delivered":3,"read":0}`,
		string(EncodeFrame(&Frame{Type: FrameReceipt, ChatID: "c", UserID: "u", Delivered: 3})))
	require.JSONEq(t, `{"type":"presence_update","userId":"u","status":"offline","devices":0}`,
		string(EncodeFrame(&Frame{Type: FramePresenceUpdate, UserID: "u", Status: "offline"})))
	require.JSONEq(t, `{"type":"reconnect","afterMs":0}`, string(EncodeFrame(&Frame{Type: FrameReconnect})))
}

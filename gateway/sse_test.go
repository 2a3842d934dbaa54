package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// sseEvent is one parsed event of the stream.
type sseEvent struct {
	name string // "" for the default (a frame)
	data string
}

// stream is an open GET /api/v1/events.
type stream struct {
	resp   *http.Response
	events chan sseEvent
}

// openEvents opens the event stream with token (as a header, or in the query when
// inQuery) and returns it with the response status.
func openEvents(t *testing.T, n *testutil.Natter, token string, inQuery bool, header http.Header) (*stream, int, []byte) {
	t.Helper()
	url := n.HTTPURL() + "/api/v1/events"
	if inQuery {
		url += "?token=" + token
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	if !inQuery && token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, resp.StatusCode, body
	}
	require.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
	s := &stream{resp: resp, events: make(chan sseEvent, 1024)}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if len(data) > 0 {
					ev.data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	return s, resp.StatusCode, nil
}

// next returns the next frame of type typ, skipping others ("": the next frame).
func (s *stream) next(t *testing.T, typ string) *protocol.Frame {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", typ)
			}
			if ev.name != "" {
				if ev.name == typ {
					return &protocol.Frame{Type: ev.name, Message: ev.data}
				}
				continue
			}
			f, err := protocol.DecodeFrame([]byte(ev.data))
			require.NoError(t, err)
			if f.Type == typ || typ == "" {
				return f
			}
		case <-timer.C:
			t.Fatalf("no %s within 10s", typ)
		}
	}
}

// post sends one frame body over POST /api/v1/frames.
func post(t *testing.T, n *testutil.Natter, token, connID string, body []byte) (int, []byte) {
	t.Helper()
	return n.Do(t, "POST", "/api/v1/frames?connId="+connID, token, body)
}

func frameJSON(f *protocol.Frame) []byte { return protocol.EncodeFrame(f) }

func TestSSEStreamRefusesBadRequests(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	for _, tc := range []struct {
		name   string
		token  string
		header http.Header
		status int
		code   protocol.Code
	}{
		{"no token", "", nil, http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"malformed token", "not-a-jwt", nil, http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"expired token", n.TokenTTL(t, "alice", -time.Hour), nil, http.StatusUnauthorized, protocol.CodeTokenExpired},
		{"hostile subject", n.TokenTTL(t, "alice", time.Hour, "a.>"), nil, http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"foreign origin", n.Token(t, "alice"), http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden, protocol.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, status, body := openEvents(t, n, tc.token, false, tc.header)
			require.Equal(t, tc.status, status, string(body))
			require.Contains(t, string(body), `"code":"`+string(tc.code)+`"`)
		})
	}
}

func TestSSESendAndReceive(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	bob := n.Dial(t, "bob")
	// Token in the query, as an EventSource sends it.
	s, status, _ := openEvents(t, n, n.Token(t, "alice"), true, nil)
	require.Equal(t, http.StatusOK, status)
	connected := s.next(t, protocol.FrameConnected)
	require.Equal(t, "alice", connected.UserID)
	require.NotEmpty(t, connected.ConnID)

	code, body := post(t, n, n.Token(t, "alice"), connected.ConnID,
		frameJSON(&protocol.Frame{Type: protocol.FrameSend, ChatID: chat, MessageID: "s1", Content: "over SSE"}))
	require.Equal(t, http.StatusAccepted, code, string(body))
	// The ack (sent once sequenced) and the sender's own copy come in either order.
	var ack, mine *protocol.Frame
	for ack == nil || mine == nil {
		f := s.next(t, "")
		switch f.Type {
		case protocol.FrameAck:
			ack = f
		case protocol.FrameMessage:
			mine = f
		}
	}
	require.Equal(t, "s1", ack.MessageID)
	require.EqualValues(t, 1, ack.Seq, "the ack carries the seq")
	require.EqualValues(t, 1, mine.Seq)
	require.Equal(t, "over SSE", mine.Content)

	select {
	case f := <-bob.Frames():
		require.Equal(t, protocol.FrameMessage, f.Type)
		require.Equal(t, "s1", f.MessageID)
	case <-time.After(5 * time.Second):
		t.Fatal("bob got nothing")
	}
	_, err := bob.Send(context.Background(), chat, "w1", "over WebSocket")
	require.NoError(t, err)
	back := s.next(t, protocol.FrameMessage)
	require.Equal(t, "w1", back.MessageID)
	require.EqualValues(t, 2, back.Seq)

	// Request/answer frames work the same: ping, history, sync.
	code, _ = post(t, n, n.Token(t, "alice"), connected.ConnID, frameJSON(&protocol.Frame{Type: protocol.FramePing, ID: "p1"}))
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "p1", s.next(t, protocol.FramePong).ID)
	code, _ = post(t, n, n.Token(t, "alice"), connected.ConnID, frameJSON(&protocol.Frame{Type: protocol.FrameHistory, ID: "h1", ChatID: chat, After: new(uint64), Limit: 1}))
	require.Equal(t, http.StatusAccepted, code)
	hist := s.next(t, protocol.FrameHistoryResult)
	require.Equal(t, "h1", hist.ID)
	// "after": 0 pages forward from the first message, not back from the newest.
	require.Len(t, hist.Messages, 1)
	require.EqualValues(t, 1, hist.Messages[0].Seq)
	require.True(t, hist.HasMore)
}

func TestSSEFramesRefusals(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.MaxFrameBytes = 4096
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	s, _, _ := openEvents(t, n, n.Token(t, "alice"), false, nil)
	conn := s.next(t, protocol.FrameConnected).ConnID
	alice := n.Token(t, "alice")
	send := frameJSON(&protocol.Frame{Type: protocol.FrameSend, ChatID: chat, MessageID: "x", Content: "hi"})

	// Refusals of the request itself: an HTTP error, nothing handled.
	for _, tc := range []struct {
		name   string
		token  string
		connID string
		body   []byte
		status int
		code   protocol.Code
	}{
		{"no token", "", conn, send, http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"bad token", "nope", conn, send, http.StatusUnauthorized, protocol.CodeUnauthorized},
		{"expired token", n.TokenTTL(t, "alice", -time.Hour), conn, send, http.StatusUnauthorized, protocol.CodeTokenExpired},
		{"no connId", alice, "", send, http.StatusBadRequest, protocol.CodeBadRequest},
		{"overlong connId", alice, strings.Repeat("z", 100), send, http.StatusBadRequest, protocol.CodeBadRequest},
		{"unknown connId", alice, "zzzz", send, http.StatusNotFound, protocol.CodeNotFound},
		{"someone else's stream", n.Token(t, "bob"), conn, send, http.StatusNotFound, protocol.CodeNotFound},
		{"oversize frame", alice, conn, bytes.Repeat([]byte("x"), 5000), http.StatusRequestEntityTooLarge, protocol.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, n, tc.token, tc.connID, tc.body)
			require.Equal(t, tc.status, status, string(body))
			require.Contains(t, string(body), `"code":"`+string(tc.code)+`"`)
		})
	}

	// Refusals of the frame: 202, and the same error frame a WebSocket would get.
	for _, tc := range []struct {
		name string
		body string
		code protocol.Code
	}{
		{"malformed JSON", `{"type":`, protocol.CodeBadRequest},
		{"no type", `{"chatId":"x"}`, protocol.CodeBadRequest},
		{"unknown type", `{"type":"launch_missiles"}`, protocol.CodeUnknownType},
		{"connect again with a bad token", `{"type":"connect","token":"x"}`, protocol.CodeUnauthorized},
		{"hostile chat id", `{"type":"send","chatId":"a.*","messageId":"m","content":"x"}`, protocol.CodeInvalidID},
		{"not a member", `{"type":"send","chatId":"dm-zzzz","messageId":"m","content":"x"}`, protocol.CodeNotMember},
		{"trailing data", `{"type":"ping"} {"type":"ping"}`, protocol.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, n, alice, conn, []byte(tc.body))
			require.Equal(t, http.StatusAccepted, status, string(body))
			f := s.next(t, protocol.FrameError)
			require.Equal(t, tc.code, f.Code, f.Message)
		})
	}
	// Nothing refused was stored.
	status, body := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages", alice, nil)
	require.Equal(t, http.StatusOK, status)
	var page struct {
		Messages []protocol.Message `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(body, &page))
	require.Empty(t, page.Messages)
}

func TestSSEStreamEndsWithCloseEvent(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	s, _, _ := openEvents(t, n, n.Token(t, "alice"), false, nil)
	s.next(t, protocol.FrameConnected)
	n.Stop()
	closing := s.next(t, "close")
	var c struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	require.NoError(t, json.Unmarshal([]byte(closing.Message), &c))
	require.Equal(t, 1001, c.Code)
	require.True(t, strings.HasPrefix(c.Reason, string(protocol.CodeShuttingDown)), c.Reason)
}

package e2e

import (
	"bufio"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// The two client transports, behind one interface, so a test of a limit runs the
// same attack over a WebSocket and over the SSE fallback (GET /api/v1/events with
// POST /api/v1/frames).

// peer is one open client connection over either transport.
type peer interface {
	// frame sends one client frame (over SSE: one POST, which must be accepted).
	frame(t *testing.T, f *protocol.Frame)
	// next returns the next server frame whose type is one of types, skipping others.
	next(t *testing.T, types ...string) *protocol.Frame
}

// transport dials a connection for user. A refused dial returns the HTTP status
// of the refusal (a WebSocket's upgrade response or the event stream's) and a nil
// peer; an accepted one returns 0. Connections are closed at the end of the test.
type transport struct {
	name string
	dial func(t *testing.T, n *testutil.Natter, user string) (peer, int)
}

var transports = []transport{{"websocket", dialWS}, {"sse", dialSSE}}

var httpStatus = regexp.MustCompile(`HTTP (\d{3})`)

func dialWS(t *testing.T, n *testutil.Natter, user string) (peer, int) {
	t.Helper()
	c, err := client.Dial(ctxT(t, 10*time.Second), n.WSURL(), n.Token(t, user), nil)
	if err != nil {
		m := httpStatus.FindStringSubmatch(err.Error())
		require.NotNil(t, m, "a refused WebSocket dial is an HTTP error: %v", err)
		status, _ := strconv.Atoi(m[1])
		return nil, status
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsPeer{c}, 0
}

type wsPeer struct{ c *client.Conn }

func (p *wsPeer) frame(t *testing.T, f *protocol.Frame) {
	t.Helper()
	require.NoError(t, p.c.Frame(ctxT(t, 10*time.Second), f))
}

func (p *wsPeer) next(t *testing.T, types ...string) *protocol.Frame {
	t.Helper()
	return nextFrame(t, p.c, 15*time.Second, strings.Join(types, "|"), func(f *protocol.Frame) bool {
		for _, typ := range types {
			if f.Type == typ {
				return true
			}
		}
		return false
	})
}

// ssePeer is an open event stream and the token that posts its frames.
type ssePeer struct {
	n      *testutil.Natter
	token  string
	connID string
	frames chan *protocol.Frame // closed when the stream ends
}

func dialSSE(t *testing.T, n *testutil.Natter, user string) (peer, int) {
	t.Helper()
	p, status := openSSE(t, n, n.Token(t, user), nil)
	if p == nil {
		return nil, status
	}
	return p, 0
}

// openSSE opens GET /api/v1/events with token and extra headers; it returns the
// stream once its connected frame arrived, or nil and the refusal's status.
func openSSE(t *testing.T, n *testutil.Natter, token string, header http.Header) (*ssePeer, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", n.HTTPURL()+"/api/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	p := &ssePeer{n: n, token: token, frames: make(chan *protocol.Frame, 4096)}
	go func() {
		defer close(p.frames)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		var data []string
		named := false
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "":
				if len(data) > 0 && !named {
					if f, err := protocol.DecodeFrame([]byte(strings.Join(data, "\n"))); err == nil {
						p.frames <- f
					}
				}
				data, named = nil, false
			case strings.HasPrefix(line, "event: "):
				named = true // the close event: the stream ends after it
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	f := p.next(t, protocol.FrameConnected)
	p.connID = f.ConnID
	return p, resp.StatusCode
}

func (p *ssePeer) frame(t *testing.T, f *protocol.Frame) {
	t.Helper()
	status, body := p.n.Do(t, "POST", "/api/v1/frames?connId="+p.connID, p.token, protocol.EncodeFrame(f))
	require.Equal(t, http.StatusAccepted, status, string(body))
}

func (p *ssePeer) next(t *testing.T, types ...string) *protocol.Frame {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				t.Fatalf("event stream ended while waiting for %v", types)
			}
			for _, typ := range types {
				if f.Type == typ {
					return f
				}
			}
		case <-timer.C:
			t.Fatalf("no %v within 15s", types)
		}
	}
}

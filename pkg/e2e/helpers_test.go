package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// next returns the next frame of type typ, skipping others; it fails after d.
func next(t testing.TB, c *client.Conn, typ string, d time.Duration) *protocol.Frame {
	t.Helper()
	return nextFrame(t, c, d, typ, func(f *protocol.Frame) bool { return f.Type == typ })
}

// collect gathers message frames until n arrived or d passed.
func collect(t testing.TB, c *client.Conn, n int, d time.Duration) []*protocol.Frame {
	t.Helper()
	var out []*protocol.Frame
	timer := time.NewTimer(d)
	defer timer.Stop()
	for len(out) < n {
		select {
		case f, ok := <-c.Frames():
			if !ok {
				t.Fatalf("connection closed after %d of %d messages: %v", len(out), n, c.Err())
			}
			if f.Type == protocol.FrameMessage {
				out = append(out, f)
			}
		case <-timer.C:
			t.Fatalf("got %d of %d messages within %s", len(out), n, d)
		}
	}
	return out
}

// quiet asserts no message frame arrives within d.
func quiet(t testing.TB, c *client.Conn, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-c.Frames():
			if !ok {
				return
			}
			if f.Type == protocol.FrameMessage {
				t.Fatalf("unexpected message: %+v", f)
			}
		case <-timer.C:
			return
		}
	}
}

// nextFrame returns the next frame for which match is true, skipping others; it
// fails after d.
func nextFrame(t testing.TB, c *client.Conn, d time.Duration, what string, match func(*protocol.Frame) bool) *protocol.Frame {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-c.Frames():
			if !ok {
				t.Fatalf("connection closed while waiting for %s: %v", what, c.Err())
			}
			if match(f) {
				return f
			}
		case <-timer.C:
			t.Fatalf("no %s within %s", what, d)
		}
	}
}

// readAll returns every stored message of chat, oldest first.
func readAll(st store.Store, chat string) ([]protocol.Message, error) {
	var out []protocol.Message
	var after uint64
	for {
		page, err := st.History(context.Background(), chat, store.HistoryQuery{Dir: store.Forward, After: after, Limit: store.MaxPage})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < store.MaxPage {
			return out, nil
		}
		after = page[len(page)-1].Seq
	}
}

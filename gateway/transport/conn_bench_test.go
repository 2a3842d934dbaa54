package transport

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkConnWrite measures the writer of one WebSocket connection over loopback:
// frames are queued in bursts (as a sync, or a busy chat, queues them) and the
// benchmark waits until the client has read each burst. writes/frame is the number
// of write(2) calls per frame. "plain" is the connection as it was before the writer framed messages itself:
// net/http's 4 KiB buffers, one write per frame.
func BenchmarkConnWrite(b *testing.B) {
	frame := []byte(`{"type":"message","chatId":"c-0123456789","seq":12345,"messageId":"m-0123456789abcdef","senderId":"u-42","timestamp":1764200000000,"content":"` + strings.Repeat("x", 100) + `"}`)
	for _, framed := range []bool{false, true} {
		for _, burst := range []int{1, 4, 16} {
			name := fmt.Sprintf("plain/burst=%d", burst)
			if framed {
				name = fmt.Sprintf("framed/burst=%d", burst)
			}
			b.Run(name, func(b *testing.B) { benchConnWrite(b, framed, burst, frame) })
		}
	}
}

func benchConnWrite(b *testing.B, framed bool, burst int, frame []byte) {
	out := &Out{queue: 1 << 20, writeTimeout: 5 * time.Second, slow: new(atomic.Int64)}
	type accepted struct {
		ws  *websocket.Conn
		cnt *countConn
		up  *UpgradeWriter
	}
	acc := make(chan accepted, 1)
	stop := make(chan struct{}) // ends the plain handler: a hijacked request's context is never cancelled
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !framed {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				b.Error(err)
				return
			}
			acc <- accepted{ws: ws}
			select { // keep the handler (and its connection) alive
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		up := &UpgradeWriter{ResponseWriter: w, timeout: 5 * time.Second}
		ws, err := websocket.Accept(up, r, nil)
		if err != nil {
			b.Error(err)
			return
		}
		cnt := &countConn{Conn: up.conn.Conn}
		up.conn.Conn = cnt
		acc <- accepted{ws: ws, cnt: cnt, up: up}
	}))
	defer srv.Close()
	defer close(stop)
	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer client.CloseNow()
	a := <-acc
	defer a.ws.CloseNow()
	c := &Conn{out: out, ws: a.ws}
	if framed {
		c.sock = a.up.conn
	}
	got := make(chan struct{}, 1<<16)
	go func() {
		for {
			if _, _, err := client.Read(ctx); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	var before int
	if a.cnt != nil {
		before = a.cnt.count()
	}
	b.ResetTimer()
	frames := 0
	for frames < b.N {
		n := min(burst, b.N-frames)
		c.mu.Lock()
		for range n {
			c.queue = append(c.queue, frame)
		}
		start := !c.writing
		c.writing = true
		c.mu.Unlock()
		if start {
			go c.writeLoop()
		}
		for range n {
			<-got
		}
		frames += n
	}
	b.StopTimer()
	if a.cnt != nil {
		b.ReportMetric(float64(a.cnt.count()-before)/float64(b.N), "writes/frame")
	} else {
		b.ReportMetric(1, "writes/frame") // one bufio flush per message
	}
}

package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

var errSSEClosed = errors.New("gateway: event stream closed")

// SSESink is the server→client half of an HTTP fallback connection (an event
// stream); the gateway's SSE handlers own the request.
type SSESink struct {
	timeout time.Duration // bounds one write

	mu        sync.Mutex // serializes writes; guards the fields below
	w         http.ResponseWriter
	rc        *http.ResponseController
	done      bool   // the GET handler is returning: w must not be touched again
	closeCode int    // set by CloseWith: the close event to write last; 0: none
	closeWhy  string // its reason

	// ReqMu serializes POSTed frames, as a WebSocket's single read loop does, so one
	// connection's frames are handled in order and never concurrently.
	ReqMu sync.Mutex
}

// NewSSESink returns the sink of the event stream w (its controller rc); a write
// fails after writeTimeout.
func NewSSESink(w http.ResponseWriter, rc *http.ResponseController, writeTimeout time.Duration) *SSESink {
	return &SSESink{timeout: writeTimeout, w: w, rc: rc}
}

// write sends each frame as one event and flushes them together. A frame is one
// line of JSON; any newline in it is split across data lines, which SSE joins back
// with "\n".
func (s *SSESink) write(frames [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errSSEClosed
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	var buf bytes.Buffer
	size := 0
	for _, frame := range frames {
		size += len(frame) + 8
	}
	buf.Grow(size)
	for _, frame := range frames {
		for _, line := range bytes.Split(frame, []byte("\n")) {
			buf.WriteString("data: ")
			buf.Write(bytes.TrimSuffix(line, []byte("\r")))
			buf.WriteByte('\n')
		}
		buf.WriteByte('\n')
	}
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return err
	}
	return s.rc.Flush()
}

// ping writes an SSE comment: it keeps proxies from timing the stream out and fails
// when the client has gone.
func (s *SSESink) ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errSSEClosed
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := io.WriteString(s.w, ": ping\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// SetClose records the close event; it does no I/O (CloseWith may be called from a
// delivery path that must not block). The stream's handler writes it as it ends.
func (s *SSESink) SetClose(code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeCode == 0 {
		s.closeCode, s.closeWhy = code, reason
	}
}

// Finish writes the close event, if any, and forbids further writes. The GET handler
// calls it before returning.
func (s *SSESink) Finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if s.closeCode != 0 {
		b, _ := json.Marshal(map[string]any{"code": s.closeCode, "reason": s.closeWhy})
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
		if _, err := io.WriteString(s.w, "event: close\ndata: "+string(b)+"\n\n"); err == nil {
			_ = s.rc.Flush()
		}
	}
	s.done = true
}

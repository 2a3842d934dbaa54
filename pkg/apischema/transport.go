package apischema

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Transport is an http.RoundTripper that validates every response of the REST API
// (paths under /api/) against docs/openapi.yaml and every event of an event stream
// (the HTTP fallback) against docs/asyncapi.yaml. A mismatch fails the request: the
// round trip returns an error naming the operation and the schema error, and an
// event stream's body returns it from Read. Report is called with every mismatch too,
// so one no test reads is not lost. WebSocket upgrades pass through untouched.
type Transport struct {
	Base      http.RoundTripper
	Validator *Validator
	Report    func(error)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Base.RoundTrip(req)
	// CORS preflights (OPTIONS) are not operations of the API; upgrades carry frames.
	if err != nil || !strings.HasPrefix(req.URL.Path, "/api/") || req.Method == http.MethodOptions ||
		resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, err
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(ct, "text/event-stream") {
		if err := t.Validator.Response(req.Method, req.URL.Path, resp.StatusCode, "", nil); err != nil {
			resp.Body.Close()
			return nil, t.report(err)
		}
		resp.Body = &eventStream{r: bufio.NewReader(resp.Body), c: resp.Body, t: t}
		return resp, nil
	}
	if !strings.HasPrefix(ct, "application/json") && resp.StatusCode < 300 {
		// Media bytes: only the status is checked; the body stays streamed.
		if err := t.Validator.Response(req.Method, req.URL.Path, resp.StatusCode, ct, nil); err != nil {
			resp.Body.Close()
			return nil, t.report(err)
		}
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.Validator.Response(req.Method, req.URL.Path, resp.StatusCode, ct, body); err != nil {
		return nil, t.report(fmt.Errorf("%w\nbody: %s", err, truncate(body)))
	}
	return resp, nil
}

func (t *Transport) report(err error) error {
	err = fmt.Errorf("apischema: %w", err)
	if t.Report != nil {
		t.Report(err)
	}
	return err
}

// eventStream validates a text/event-stream body event by event as it is read: the
// data of each event is a frame, or (event: close) the close event.
type eventStream struct {
	r   *bufio.Reader
	c   io.Closer
	t   *Transport
	mu  sync.Mutex
	buf bytes.Buffer // read but not yet returned
	ev  struct {
		name string
		data []string
	}
	err error
}

func (s *eventStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.buf.Len() == 0 {
		if s.err != nil {
			return 0, s.err
		}
		line, err := s.r.ReadBytes('\n')
		s.buf.Write(line)
		if len(line) > 0 {
			if verr := s.line(strings.TrimRight(string(line), "\r\n")); verr != nil {
				s.err = verr
			}
		}
		if err != nil && s.err == nil {
			s.err = err
		}
	}
	return s.buf.Read(p)
}

// line takes one line of the stream and validates an event when it ends.
func (s *eventStream) line(l string) error {
	switch {
	case l == "":
		if len(s.ev.data) == 0 {
			s.ev.name = ""
			return nil
		}
		data := []byte(strings.Join(s.ev.data, "\n"))
		var err error
		if s.ev.name == "close" {
			err = s.t.Validator.CloseEvent(data)
		} else {
			err = s.t.Validator.Frame(data)
		}
		s.ev.name, s.ev.data = "", nil
		if err != nil {
			return s.t.report(fmt.Errorf("event stream: %w\ndata: %s", err, truncate(data)))
		}
	case strings.HasPrefix(l, ":"):
	case strings.HasPrefix(l, "event:"):
		s.ev.name = strings.TrimSpace(strings.TrimPrefix(l, "event:"))
	case strings.HasPrefix(l, "data:"):
		s.ev.data = append(s.ev.data, strings.TrimPrefix(strings.TrimPrefix(l, "data:"), " "))
	}
	return nil
}

func (s *eventStream) Close() error { return s.c.Close() }

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

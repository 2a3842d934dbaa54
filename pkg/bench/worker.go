package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"github.com/natter-chat/natter/pkg/protocol"
)

// stats are one process's counters and histograms. All fields are safe for
// concurrent use.
type stats struct {
	sent, acked, delivered, expected, failed atomic.Int64
	// ...Win count events inside the measurement window (for rates).
	sentWin, ackedWin, deliveredWin atomic.Int64
	connected, dialFailed           atomic.Int64
	resumed                         atomic.Int64

	deliver, ack, lag, resume, connect Histogram

	mu     sync.Mutex // guards errors
	errors map[string]int64
}

func newStats() *stats { return &stats{errors: map[string]int64{}} }

func (s *stats) errorf(code string) {
	s.mu.Lock()
	s.errors[code]++
	s.mu.Unlock()
}

func (s *stats) errorCounts() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.errors))
	for k, v := range s.errors {
		out[k] = v
	}
	return out
}

// Progress is a snapshot of one process's cumulative counters; children send one a
// second to their parent, which adds them up.
type Progress struct {
	Conns      int64            `json:"conns"`
	DialFailed int64            `json:"dialFailed"`
	Sent       int64            `json:"sent"`
	Acked      int64            `json:"acked"`
	Delivered  int64            `json:"delivered"`
	Expected   int64            `json:"expected"`
	Failed     int64            `json:"failed"`
	Resumed    int64            `json:"resumed"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	P99Ms      float64          `json:"p99Ms"`
}

func (p *Progress) add(o Progress) {
	p.Conns += o.Conns
	p.DialFailed += o.DialFailed
	p.Sent += o.Sent
	p.Acked += o.Acked
	p.Delivered += o.Delivered
	p.Expected += o.Expected
	p.Failed += o.Failed
	p.Resumed += o.Resumed
	p.P99Ms = max(p.P99Ms, o.P99Ms)
	for k, v := range o.Errors {
		if p.Errors == nil {
			p.Errors = map[string]int64{}
		}
		p.Errors[k] += v
	}
}

func (p *Progress) errorTotal() int64 {
	var n int64
	for _, v := range p.Errors {
		n += v
	}
	return n
}

// Part is what one process measured, for the parent to merge into the Result.
type Part struct {
	Progress
	SentWin      int64         `json:"sentWin"`
	AckedWin     int64         `json:"ackedWin"`
	DeliveredWin int64         `json:"deliveredWin"`
	Deliver      HistogramData `json:"deliver"`
	Ack          HistogramData `json:"ack"`
	Lag          HistogramData `json:"lag"`
	Resume       HistogramData `json:"resume"`
	Connect      HistogramData `json:"connect"`
	Dupes        int64         `json:"dupes"`
	Gaps         int64         `json:"gaps"`
	Incomplete   int64         `json:"incomplete"`
	CPUSeconds   float64       `json:"cpuSeconds"`
	MaxRSSBytes  int64         `json:"maxRssBytes"`
}

// worker runs connections lo..hi-1 of a plan in this process.
type worker struct {
	cfg    *Config
	plan   *Plan
	lo, hi int
	st     *stats
	dial   *dialer
	tokens *tokenSource

	recips    map[string]int // chat ID -> recipients of one message
	userChats [][]int
	content   []byte

	conns []*bconn

	winStart, winEnd atomic.Int64 // unix nanos of the measurement window (0: unset)
	reconnAt         atomic.Int64 // unix nanos of the last reconnect storm

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // senders
}

func newWorker(cfg *Config, plan *Plan, lo, hi int, tokens *tokenSource) (*worker, error) {
	d, err := newDialer(cfg.URLs, cfg.LocalAddrs)
	if err != nil {
		return nil, err
	}
	w := &worker{cfg: cfg, plan: plan, lo: lo, hi: hi, st: newStats(), dial: d, tokens: tokens,
		recips: map[string]int{}, userChats: plan.userChats(), content: bytes.Repeat([]byte("x"), max(cfg.Size, 1))}
	for c, ch := range plan.Chats {
		w.recips[ch.ID] = plan.recipients(c)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w, nil
}

func (w *worker) recipientsOf(chat string) int { return w.recips[chat] }

func (w *worker) inWindow(t time.Time) bool {
	s, e := w.winStart.Load(), w.winEnd.Load()
	ns := t.UnixNano()
	return s != 0 && ns >= s && ns < e
}

func (w *worker) reconnectAt() time.Time { return time.Unix(0, w.reconnAt.Load()) }

// connectAll dials every connection of the worker, conc at a time. Failures are
// counted, not fatal: the report shows them.
func (w *worker) connectAll(ctx context.Context, resume bool) {
	if w.conns == nil {
		for i := w.lo; i < w.hi; i++ {
			w.conns = append(w.conns, &bconn{idx: i, user: w.plan.userOf(i), w: w})
		}
	}
	work := make(chan *bconn)
	var wg sync.WaitGroup
	for k := 0; k < max(w.cfg.DialConcurrency, 1); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				w.connect(ctx, c, resume)
			}
		}()
	}
	for _, c := range w.conns {
		select {
		case work <- c:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

func (w *worker) connect(ctx context.Context, c *bconn, resume bool) {
	start := time.Now()
	tok, err := w.tokens.token(ctx, w.plan.Users[c.user])
	if err != nil {
		w.st.dialFailed.Add(1)
		w.st.errorf("token")
		return
	}
	var ws *websocket.Conn
	lastErr := lifecycle.Retry(ctx, lifecycle.Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, MaxTries: 3},
		func() error {
			dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			var err error
			ws, err = w.dial.dial(dctx, c.idx, tok, resume)
			return err
		}, nil)
	if lastErr == nil {
		c.ws = ws
		c.done = make(chan struct{})
		c.gone.Store(false)
		w.st.connected.Add(1)
		w.st.connect.Record(time.Since(start))
		go c.readLoop(ws)
		return
	}
	w.st.dialFailed.Add(1)
	w.st.errorf("dial")
	if w.cfg.Verbose {
		fmt.Fprintf(w.cfg.Stderr, "bench: conn %d: %v\n", c.idx, lastErr)
	}
}

// senderChats returns, for connection c, the chats it sends to: those where its
// user is a sender and c is the user's first connection.
func (w *worker) senderChats(c *bconn) []string {
	if c.idx >= len(w.plan.Users) {
		return nil // a second device: only receives
	}
	var out []string
	for _, ch := range w.userChats[c.user] {
		for _, s := range w.plan.senders(ch) {
			if s == c.user {
				out = append(out, w.plan.Chats[ch].ID)
				break
			}
		}
	}
	return out
}

// totalStreams counts (sender connection, chat) pairs over the whole plan, so each
// process paces its share of the total rate.
func (p *Plan) totalStreams() int {
	n := 0
	for c := range p.Chats {
		for _, u := range p.senders(c) {
			if u < p.Conns {
				n++
			}
		}
	}
	return n
}

// startSending starts the senders: warm-up from at, the measurement window after it,
// and no sends after the window.
func (w *worker) startSending(at time.Time) {
	ws := at.Add(w.cfg.Warmup)
	we := ws.Add(w.cfg.Duration)
	w.winStart.Store(ws.UnixNano())
	w.winEnd.Store(we.UnixNano())
	total := w.plan.totalStreams()
	for _, c := range w.conns {
		chats := w.senderChats(c)
		if len(chats) == 0 || c.ws == nil {
			continue
		}
		var rate float64
		if w.cfg.Rate > 0 && total > 0 {
			rate = w.cfg.Rate * float64(len(chats)) / float64(total)
		}
		c.window = make(chan struct{}, max(w.cfg.Window, 1))
		w.wg.Add(1)
		go func(c *bconn, chats []string, rate float64) {
			defer w.wg.Done()
			w.sendLoop(c, chats, rate, at, we)
		}(c, chats, rate)
	}
}

// sendLoop sends each message to a random one of chats (so with many chats per
// user the sends spread over all chats of the run, as in the state-scale runs) at rate (0: as fast as the window allows)
// from start until end.
func (w *worker) sendLoop(c *bconn, chats []string, rate float64, start, end time.Time) {
	var p *pacer
	if rate > 0 {
		// A random phase spreads the senders' schedules.
		p = newPacer(start.Add(time.Duration(rand.Float64()*float64(time.Second)/rate)), rate)
	} else if !sleepUntil(w.ctx, start) {
		return
	}
	ws := c.ws
	for n := int64(0); ; n++ {
		var due time.Time
		if p != nil {
			due = p.next()
			if !due.Before(end) || !sleepUntil(w.ctx, due) {
				return
			}
		} else if !time.Now().Before(end) {
			return
		}
		select {
		case c.window <- struct{}{}:
		case <-c.done:
			return
		case <-w.ctx.Done():
			return
		}
		now := time.Now()
		if p == nil {
			due = now
		}
		if !now.Before(end) && p == nil {
			return
		}
		chat := chats[0]
		if len(chats) > 1 {
			chat = chats[rand.IntN(len(chats))]
		}
		if err := c.writeSend(ws, chat, messageID(w.plan.Run, c.idx, n, due), w.content); err != nil {
			if !c.gone.Load() {
				w.st.errorf("write")
			}
			return
		}
		w.st.sent.Add(1)
		w.st.expected.Add(int64(w.recips[chat]))
		if w.inWindow(due) {
			w.st.sentWin.Add(1)
			w.st.lag.Record(now.Sub(due))
		}
	}
}

// waitSenders waits for the senders to finish their schedules.
func (w *worker) waitSenders() { w.wg.Wait() }

// disconnect drops every connection at once, as a network failure would.
func (w *worker) disconnect() {
	for _, c := range w.conns {
		if c.ws != nil {
			c.gone.Store(true)
			c.ws.CloseNow()
		}
	}
	for _, c := range w.conns {
		if c.ws != nil {
			<-c.done
			c.ws = nil
		}
	}
	w.st.connected.Store(0)
}

// prepareResume records, per connection, the seq each of its chats must reach after
// a resume: what it had seen plus offline messages per chat.
func (w *worker) prepareResume(offline int) {
	for _, c := range w.conns {
		c.mu.Lock()
		c.target = map[string]uint64{}
		for _, ch := range w.userChats[c.user] {
			id := w.plan.Chats[ch].ID
			c.target[id] = c.last[id] + uint64(offline)
		}
		c.synced, c.complete = false, false
		c.mu.Unlock()
	}
}

// reconnect reconnects every connection with resume and sends each a sync from its
// last seen seqs; completion is tracked by the readers.
func (w *worker) reconnect(ctx context.Context, at time.Time) {
	w.reconnAt.Store(at.UnixNano())
	sem := make(chan struct{}, max(w.cfg.DialConcurrency, 1))
	var wg sync.WaitGroup
	for _, c := range w.conns {
		sem <- struct{}{}
		wg.Add(1)
		go func(c *bconn) {
			defer func() { <-sem; wg.Done() }()
			w.connect(ctx, c, true)
			if c.ws == nil {
				return
			}
			c.mu.Lock()
			cursors := make([]protocol.ChatCursor, 0, len(c.target))
			for chat := range c.target {
				cursors = append(cursors, protocol.ChatCursor{ChatID: chat, Seq: c.last[chat]})
			}
			c.mu.Unlock()
			sort.Slice(cursors, func(i, j int) bool { return cursors[i].ChatID < cursors[j].ChatID })
			if err := c.writeFrame(c.ws, &protocol.Frame{Type: protocol.FrameSync, ID: "resume", Chats: cursors}); err != nil {
				w.st.errorf("write")
			}
		}(c)
	}
	wg.Wait()
}

// enableTracking makes readers record per-chat seqs (resume mode).
func (w *worker) enableTracking() {
	if w.conns == nil {
		for i := w.lo; i < w.hi; i++ {
			w.conns = append(w.conns, &bconn{idx: i, user: w.plan.userOf(i), w: w, last: map[string]uint64{}})
		}
	}
}

func (w *worker) progress() Progress {
	return Progress{Conns: w.st.connected.Load(), DialFailed: w.st.dialFailed.Load(), Sent: w.st.sent.Load(),
		Acked: w.st.acked.Load(), Delivered: w.st.delivered.Load(), Expected: w.st.expected.Load(),
		Failed: w.st.failed.Load(), Resumed: w.st.resumed.Load(), Errors: w.st.errorCounts(),
		P99Ms: ms(w.st.deliver.Percentile(99))}
}

// close stops the senders and closes every connection.
func (w *worker) close() {
	w.cancel()
	w.wg.Wait()
	for _, c := range w.conns {
		if c.ws != nil {
			c.gone.Store(true)
			c.ws.CloseNow()
		}
	}
	for _, c := range w.conns {
		if c.ws != nil {
			<-c.done
		}
	}
}

// part returns what this worker measured.
func (w *worker) part() Part {
	p := Part{Progress: w.progress(), SentWin: w.st.sentWin.Load(), AckedWin: w.st.ackedWin.Load(),
		DeliveredWin: w.st.deliveredWin.Load(), Deliver: w.st.deliver.Data(), Ack: w.st.ack.Data(),
		Lag: w.st.lag.Data(), Resume: w.st.resume.Data(), Connect: w.st.connect.Data()}
	for _, c := range w.conns {
		c.mu.Lock()
		p.Dupes += int64(c.dupes)
		p.Gaps += int64(c.gaps)
		if c.target != nil && !c.complete {
			p.Incomplete++
		}
		c.mu.Unlock()
	}
	p.CPUSeconds, p.MaxRSSBytes = selfUsage()
	return p
}

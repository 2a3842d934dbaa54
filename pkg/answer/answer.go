// Package answer receives the sequencer's answers to ingress messages:
// the publisher of a NATTER_IN message (a gateway, or a backend service through
// pkg/publish) names a subject of its own in protocol.HeaderAnswer, and the
// sequencer publishes its decision there once it decided: an ack frame with the
// chat seq once the message is in NATTER_LOG (duplicate: true and the original seq
// when the chat already held its messageId), or an error frame when it refused it
// (sequencer/answer.go). A Waiter listens on all of one publisher's answer
// subjects with one subscription and hands each answer to the send waiting for it.
//
// Answers are core NATS, at most once: a send whose answer does not come is
// resent with the same messageId by its client, and the sequencer answers the
// resend with the original seq.
package answer

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Waiter matches answers to the sends waiting for them. Safe for concurrent use.
type Waiter struct {
	nc      *nats.Conn
	prefix  string // this publisher's answer subjects: prefix + n
	timeout time.Duration
	log     *zap.Logger

	next atomic.Uint64

	// mu guards sub and waiting; held only to look up, add or remove, never across
	// I/O or a delivery.
	mu      sync.Mutex
	sub     *nats.Subscription
	waiting map[uint64]*Wait
}

// New returns a Waiter whose answer subjects are under base (the publisher's
// answer prefix, e.g. subjects.AnswerGatewayPrefix()) followed by an ID drawn at
// random for this Waiter, so no two publishers, or two runs of one, share a
// subject. A wait started with Start ends with no answer after timeout (0: only
// Cancel ends it). log may be nil.
func New(nc *nats.Conn, base string, timeout time.Duration, log *zap.Logger) *Waiter {
	if log == nil {
		log = zap.NewNop()
	}
	return &Waiter{nc: nc, prefix: base + ids.New() + ".", timeout: timeout, log: log,
		waiting: make(map[uint64]*Wait)}
}

// Wait is one send waiting for its answer. The answer (or nil for none in time)
// goes to its done function exactly once, unless it is cancelled.
type Wait struct {
	w       *Waiter
	n       uint64
	subject string
	chatID  string
	msgID   string
	done    func(*protocol.Frame)
	fired   atomic.Bool

	// mu guards timer: Start runs on the sender's goroutine while the answer may
	// already be finishing the wait on the subscription's.
	mu    sync.Mutex
	timer *time.Timer
}

// Subject is where the sequencer is to publish the answer: the send's
// protocol.HeaderAnswer. Unique to the send, so it also serves as its Nats-Msg-Id.
func (w *Wait) Subject() string { return w.subject }

// Expect registers a wait for the answer about chat's message msgID and returns
// it; done is called once, from the Waiter's subscription (it must not block),
// with the answer frame or with nil if none came in time. It subscribes to the
// answers on first use.
func (a *Waiter) Expect(chat, msgID string, done func(*protocol.Frame)) (*Wait, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sub == nil {
		sub, err := a.nc.Subscribe(a.prefix+">", a.onAnswer)
		if err != nil {
			return nil, fmt.Errorf("subscribe to answers: %w", err)
		}
		// Answers come as fast as sends are sequenced: never drop one for a
		// pending limit.
		_ = sub.SetPendingLimits(-1, 64<<20)
		// The subscription must be in place at the server before the send that
		// names it is published, or an early answer is lost.
		if err := a.nc.Flush(); err != nil {
			_ = sub.Unsubscribe()
			return nil, fmt.Errorf("subscribe to answers: %w", err)
		}
		a.sub = sub
	}
	n := a.next.Add(1)
	w := &Wait{w: a, n: n, subject: a.prefix + strconv.FormatUint(n, 10), chatID: chat, msgID: msgID, done: done}
	a.waiting[n] = w
	return w, nil
}

// Start begins the wait's timeout (the Waiter's): call it once the send is stored.
func (w *Wait) Start() {
	if w.w.timeout <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.fired.Load() { // an answer that came first needs no timeout
		w.timer = time.AfterFunc(w.w.timeout, func() { w.finish(nil) })
	}
}

// stopTimer stops the wait's timeout, if it started.
func (w *Wait) stopTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// Cancel forgets the wait without calling done (its send was not stored, or its
// waiter left).
func (w *Wait) Cancel() {
	if w.fired.CompareAndSwap(false, true) {
		w.w.remove(w.n)
		w.stopTimer()
	}
}

// finish hands f to done, once.
func (w *Wait) finish(f *protocol.Frame) {
	if !w.fired.CompareAndSwap(false, true) {
		return
	}
	w.w.remove(w.n)
	w.stopTimer()
	w.done(f)
}

func (a *Waiter) remove(n uint64) {
	a.mu.Lock()
	delete(a.waiting, n)
	a.mu.Unlock()
}

// onAnswer hands an answer to the send it is for. An answer that names another
// chat or message than its send is ignored (the send then times out): only the
// sequencer publishes answers, but it publishes where an ingress message asked.
func (a *Waiter) onAnswer(msg *nats.Msg) {
	n, err := strconv.ParseUint(strings.TrimPrefix(msg.Subject, a.prefix), 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	w := a.waiting[n]
	a.mu.Unlock()
	if w == nil {
		return // answered already (a redelivery's answer), timed out, or not ours
	}
	f, err := protocol.DecodeFrame(msg.Data)
	if err != nil || f.ChatID != w.chatID || f.MessageID != w.msgID || (f.Type != protocol.FrameAck && f.Type != protocol.FrameError) {
		a.log.Warn("ignoring an answer that does not fit its send", zap.String("subject", msg.Subject),
			zap.String("chat_id", w.chatID), zap.String("message_id", w.msgID))
		return
	}
	w.finish(f)
}

// Close unsubscribes; waits still pending end by their timeouts.
func (a *Waiter) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sub != nil {
		_ = a.sub.Unsubscribe()
		a.sub = nil
	}
}

// Err is the error an error answer stands for (CodeInternal if it names no code).
func Err(f *protocol.Frame) *protocol.Error {
	code := f.Code
	if code == "" {
		code = protocol.CodeInternal
	}
	return &protocol.Error{Code: code, Message: f.Message}
}

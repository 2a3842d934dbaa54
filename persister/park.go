package persister

import (
	"sync"
	"time"
)

// Why chats are parked: one chat whose rows the store cannot take (a corrupt page, a
// row the backend refuses) used to fail every batch it was in, and the persister
// retried that mixed batch forever, so no other chat was persisted either. Now a
// batch that fails while the store answers a ping is split by chat; a chat whose
// own write still fails is parked: its messages are negatively acknowledged with a
// delay (JetStream redelivers them then; they stay unacked, so the ack floor, and
// with it what trim.go may remove from NATTER_LOG, never passes them) and the other
// chats go on. The chat is tried again when its delay is over, with backoff, and
// resumes as soon as a write succeeds.

// parkMinBackoff is the first retry delay of a parked chat; it doubles up to
// Config.MaxBackoff. Tests shorten it.
var parkMinBackoff = 250 * time.Millisecond

// parking holds the parked chats of one persister instance. Instances park
// independently: a chat parked by one is redelivered to whichever pulls it.
type parking struct {
	max time.Duration

	mu    sync.Mutex // guards chats; the drain loop and metric scrapes use it
	chats map[string]*parked
}

// parked is one parked chat.
type parked struct {
	since   time.Time // first failure
	until   time.Time // next attempt
	backoff time.Duration
	fails   int
}

func newParking(maxBackoff time.Duration) *parking {
	return &parking{max: maxBackoff, chats: map[string]*parked{}}
}

// wait returns how long chat stays parked from now; 0 if it is not parked or its
// retry is due.
func (p *parking) wait(chat string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.chats[chat]
	if !ok || !now.Before(c.until) {
		return 0
	}
	return c.until.Sub(now)
}

// isParked reports whether chat is parked (due for a retry or not).
func (p *parking) isParked(chat string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.chats[chat]
	return ok
}

// fail records a failed write of chat and returns the delay before its next
// attempt and whether the chat was just parked (not parked before).
func (p *parking) fail(chat string, now time.Time) (delay time.Duration, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.chats[chat]
	if !ok {
		c = &parked{since: now, backoff: parkMinBackoff}
		p.chats[chat] = c
	} else {
		c.backoff = min(2*c.backoff, max(p.max, parkMinBackoff))
	}
	c.fails++
	c.until = now.Add(c.backoff)
	return c.backoff, !ok
}

// resume unparks chat after a successful write; it returns how long the chat was
// parked and how many writes failed meanwhile, or ok false if it was not parked.
func (p *parking) resume(chat string, now time.Time) (parkedFor time.Duration, fails int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.chats[chat]
	if !ok {
		return 0, 0, false
	}
	delete(p.chats, chat)
	return now.Sub(c.since), c.fails, true
}

// count returns the number of parked chats.
func (p *parking) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.chats)
}

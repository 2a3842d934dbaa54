package livestate

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Typing indicators (docs/presence.md). A client sends
//
//	{"type":"typing","chatId":"...","state":"start"|"stop"}
//
// and every device of the chat's other members receives
//
//	{"type":"typing_indicator","chatId":"...","userId":"<typist>","state":"start"|"stop"}
//
// The gateway checks membership, forwards at most one start per user and chat per
// TypingConfig.Throttle (a start within it only extends the indicator), and sends
// "stop" by itself once TypingConfig.Expiry has passed without a start: clients need
// no timer of their own, though one of twice the expiry guards against a gateway
// that died mid-indicator. Typing is never persisted: it is published on
// natter.typing.<chat> (for backend observers) and to each other member's
// natter.user.<uid>, which gateways already forward. Chats with more than
// TypingConfig.MaxMembers members drop typing frames silently. Typing state lives on
// the gateway the typist is connected to, in one map with a runtime timer per active
// indicator, not a goroutine.

// Typing states.
const (
	TypingStart = "start"
	TypingStop  = "stop"
)

// maxActiveTyping caps the indicators one gateway tracks; beyond it new ones are
// dropped (a flood of chats cannot grow the map without bound).
const maxActiveTyping = 100_000

type typingKey struct{ chat, user string }

// typingEntry is one active indicator.
type typingEntry struct {
	sent    time.Time // last start forwarded
	expires time.Time // stop is sent then, unless a start extends it
	timer   *time.Timer
}

// Typing is the gateway's active typing indicators.
type Typing struct {
	cfg     TypingConfig
	d       TypingDeps
	log     *zap.Logger
	mu      sync.Mutex // guards active and every entry's fields
	active  map[typingKey]*typingEntry
	members *expirable.LRU[string, []string] // chat → member IDs, briefly
}

// NewTyping returns the typing state of one gateway.
func NewTyping(cfg TypingConfig, d TypingDeps, log *zap.Logger) *Typing {
	return &Typing{cfg: cfg, d: d, log: log, active: map[typingKey]*typingEntry{},
		members: expirable.NewLRU[string, []string](10_000, nil, 5*time.Second)}
}

// OnFrame handles a typing frame from c. It answers nothing on success; a dropped
// frame (throttled, large chat) is not an error. Its error is the answer to the
// frame.
func (t *Typing) OnFrame(ctx context.Context, c Conn, f *protocol.Frame) error {
	if err := protocol.ValidID("chat", f.ChatID); err != nil {
		return err
	}
	if f.State != TypingStart && f.State != TypingStop {
		return protocol.Errorf(protocol.CodeBadRequest, `state must be "start" or "stop"`)
	}
	user := c.UserID()
	if err := t.d.Members.IsMember(ctx, f.ChatID, user); err != nil {
		return err
	}
	members, err := t.MemberIDs(ctx, f.ChatID)
	if err != nil {
		return err
	}
	if len(members) > t.cfg.MaxMembers {
		return nil
	}
	if members, err = t.unblocked(ctx, user, members); err != nil {
		return err
	}
	k := typingKey{f.ChatID, user}
	now := time.Now()
	t.mu.Lock()
	e := t.active[k]
	if f.State == TypingStop {
		if e == nil {
			t.mu.Unlock()
			return nil
		}
		e.timer.Stop()
		delete(t.active, k)
		t.mu.Unlock()
		t.fanout(k, TypingStop, members)
		return nil
	}
	switch {
	case e != nil:
		e.expires = now.Add(t.cfg.Expiry)
		if now.Sub(e.sent) < t.cfg.Throttle {
			t.mu.Unlock()
			return nil
		}
		e.sent = now
	case len(t.active) >= maxActiveTyping:
		t.mu.Unlock()
		return nil
	default:
		e = &typingEntry{sent: now, expires: now.Add(t.cfg.Expiry)}
		e.timer = time.AfterFunc(t.cfg.Expiry, func() { t.expire(k, e) })
		t.active[k] = e
	}
	t.mu.Unlock()
	t.fanout(k, TypingStart, members)
	return nil
}

// expire sends stop for e unless a start extended it (then it waits the rest).
func (t *Typing) expire(k typingKey, e *typingEntry) {
	t.mu.Lock()
	if t.active[k] != e {
		t.mu.Unlock()
		return
	}
	if left := time.Until(e.expires); left > 0 {
		e.timer.Reset(left)
		t.mu.Unlock()
		return
	}
	delete(t.active, k)
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	members, err := t.MemberIDs(ctx, k.chat)
	if err == nil {
		members, err = t.unblocked(ctx, k.user, members)
	}
	if err != nil {
		return // the receivers' own timers end it
	}
	t.fanout(k, TypingStop, members)
}

// unblocked returns members without those typist blocks: a blocked user does not
// see the blocker type.
func (t *Typing) unblocked(ctx context.Context, typist string, members []string) ([]string, error) {
	blocked, err := t.d.Blocks.Of(ctx, typist)
	if err != nil {
		return nil, err
	}
	if len(blocked) == 0 {
		return members, nil
	}
	out := make([]string, 0, len(members))
	for _, uid := range members {
		if _, no := blocked[uid]; !no {
			out = append(out, uid)
		}
	}
	return out, nil
}

// fanout publishes the indicator on the chat's typing subject and to every member
// but the typist.
func (t *Typing) fanout(k typingKey, state string, members []string) {
	nc, s := t.d.NC, t.d.Subjects
	frame := protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameTypingIndicator, ChatID: k.chat, UserID: k.user, State: state})
	if err := nc.Publish(s.Typing(k.chat), frame); err != nil {
		if !nc.IsClosed() {
			t.log.Debug("typing publish failed", zap.String("chat_id", k.chat), zap.Error(err))
		}
		return
	}
	for _, uid := range members {
		if uid != k.user {
			_ = nc.Publish(s.User(uid), frame)
		}
	}
}

// MemberIDs returns chat's member IDs, cached for a few seconds. Of a chat with
// more than gateway.typing-max-members (where typing is dropped) it returns only
// one more than that: a big group's members are never all read for typing. Its
// error is a CodeUnavailable *protocol.Error.
func (t *Typing) MemberIDs(ctx context.Context, chat string) ([]string, error) {
	if ms, ok := t.members.Get(chat); ok {
		return ms, nil
	}
	ms, err := t.d.Store.MembersPage(ctx, chat, "", t.cfg.MaxMembers+1)
	if err != nil {
		t.log.Warn("members lookup failed", zap.String("chat_id", chat), zap.Error(err))
		return nil, protocol.Errorf(protocol.CodeUnavailable, "membership lookup failed; retry")
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	t.members.Add(chat, out)
	return out, nil
}

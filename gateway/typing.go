package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
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

// TypingConfig is the typing part of the gateway section (flags gateway.typing-*).
type TypingConfig struct {
	// Throttle is the shortest interval between two forwarded starts of one user in
	// one chat; clients typing continuously should send start about this often.
	Throttle time.Duration `yaml:"typing_throttle"`
	// Expiry is how long an indicator lasts without a new start before the gateway
	// sends stop by itself. Longer than Throttle.
	Expiry time.Duration `yaml:"typing_expiry"`
	// MaxMembers: typing in chats with more members is dropped.
	MaxMembers int `yaml:"typing_max_members"`
}

// RegisterFlags registers the gateway.typing-* flags.
func (c *TypingConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Throttle, "gateway.typing-throttle", 3*time.Second, "forward at most one typing start per user and chat this often")
	fs.DurationVar(&c.Expiry, "gateway.typing-expiry", 6*time.Second, "send typing stop after this long without a start")
	fs.IntVar(&c.MaxMembers, "gateway.typing-max-members", 200, "drop typing in chats with more members than this")
}

// Validate checks the typing settings.
func (c *TypingConfig) Validate() error {
	var errs []error
	if c.Throttle <= 0 {
		errs = append(errs, errors.New("gateway: gateway.typing-throttle must be > 0"))
	}
	if c.Expiry <= c.Throttle {
		errs = append(errs, errors.New("gateway: gateway.typing-expiry must be longer than gateway.typing-throttle"))
	}
	if c.MaxMembers < 2 || c.MaxMembers >= store.MaxMemberPage {
		// One more than the limit is read in one page (memberIDs).
		errs = append(errs, fmt.Errorf("gateway: gateway.typing-max-members must be 2..%d", store.MaxMemberPage-1))
	}
	return errors.Join(errs...)
}

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

// typingState is the gateway's active typing indicators.
type typingState struct {
	g       *Gateway
	mu      sync.Mutex // guards active and every entry's fields
	active  map[typingKey]*typingEntry
	members *expirable.LRU[string, []string] // chat → member IDs, briefly
}

func newTypingState(g *Gateway) *typingState {
	return &typingState{g: g, active: map[typingKey]*typingEntry{},
		members: expirable.NewLRU[string, []string](10_000, nil, 5*time.Second)}
}

// onTyping handles a typing frame. It answers nothing on success; a dropped frame
// (throttled, large chat) is not an error.
func (g *Gateway) onTyping(ctx context.Context, c *conn, f *protocol.Frame) error {
	if err := validID("chat", f.ChatID); err != nil {
		return err
	}
	if f.State != TypingStart && f.State != TypingStop {
		return protocol.Errorf(protocol.CodeBadRequest, `state must be "start" or "stop"`)
	}
	if _, err := g.members.check(ctx, f.ChatID, c.user); err != nil {
		return err
	}
	t := g.typing
	members, err := t.memberIDs(ctx, f.ChatID)
	if err != nil {
		return err
	}
	if len(members) > g.cfg.Typing.MaxMembers {
		return nil
	}
	if members, err = t.unblocked(ctx, c.user, members); err != nil {
		return err
	}
	k := typingKey{f.ChatID, c.user}
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
		e.expires = now.Add(g.cfg.Typing.Expiry)
		if now.Sub(e.sent) < g.cfg.Typing.Throttle {
			t.mu.Unlock()
			return nil
		}
		e.sent = now
	case len(t.active) >= maxActiveTyping:
		t.mu.Unlock()
		return nil
	default:
		e = &typingEntry{sent: now, expires: now.Add(g.cfg.Typing.Expiry)}
		e.timer = time.AfterFunc(g.cfg.Typing.Expiry, func() { t.expire(k, e) })
		t.active[k] = e
	}
	t.mu.Unlock()
	t.fanout(k, TypingStart, members)
	return nil
}

// expire sends stop for e unless a start extended it (then it waits the rest).
func (t *typingState) expire(k typingKey, e *typingEntry) {
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
	members, err := t.memberIDs(ctx, k.chat)
	if err == nil {
		members, err = t.unblocked(ctx, k.user, members)
	}
	if err != nil {
		return // the receivers' own timers end it
	}
	t.fanout(k, TypingStop, members)
}

// unblocked returns members without those typist blocks (blocks.go): a blocked
// user does not see the blocker type.
func (t *typingState) unblocked(ctx context.Context, typist string, members []string) ([]string, error) {
	blocked, err := t.g.blocks.Of(ctx, typist)
	if err != nil {
		return nil, blockUnavailable(err)
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
func (t *typingState) fanout(k typingKey, state string, members []string) {
	nc, s := t.g.deps.NC, t.g.deps.Subjects
	frame := protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameTypingIndicator, ChatID: k.chat, UserID: k.user, State: state})
	if err := nc.Publish(s.Typing(k.chat), frame); err != nil {
		if !nc.IsClosed() {
			t.g.log.Debug("typing publish failed", zap.String("chat_id", k.chat), zap.Error(err))
		}
		return
	}
	for _, uid := range members {
		if uid != k.user {
			_ = nc.Publish(s.User(uid), frame)
		}
	}
}

// memberIDs returns chat's member IDs, cached for a few seconds. Of a chat with
// more than gateway.typing-max-members (where typing is dropped) it returns only
// one more than that: a big group's members are never all read for typing.
func (t *typingState) memberIDs(ctx context.Context, chat string) ([]string, error) {
	if ms, ok := t.members.Get(chat); ok {
		return ms, nil
	}
	ms, err := t.g.deps.Store.MembersPage(ctx, chat, "", t.g.cfg.Typing.MaxMembers+1)
	if err != nil {
		t.g.log.Warn("members lookup failed", zap.String("chat_id", chat), zap.Error(err))
		return nil, protocol.Errorf(protocol.CodeUnavailable, "membership lookup failed; retry")
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	t.members.Add(chat, out)
	return out, nil
}

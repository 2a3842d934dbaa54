package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// Notification is one notification: the JSON body of the webhook request and of the
// message on natter.notify.<uid>.
type Notification struct {
	// ID identifies the notification: "<userId>.<chatId>.<seq of the last message>".
	// A redelivery (at least once) carries the same ID: receivers deduplicate on it.
	ID     string `json:"id"`
	Type   string `json:"type"` // "messages"
	UserID string `json:"userId"`
	ChatID string `json:"chatId"`
	// ChatType is "direct" or "group"; ChatName the group's name.
	ChatType string `json:"chatType,omitempty"`
	ChatName string `json:"chatName,omitempty"`
	// Encrypted marks an end-to-end encrypted chat (docs/e2ee.md): LastMessage then
	// has no Content, whatever notifier.preview-bytes says.
	Encrypted bool `json:"encrypted,omitempty"`
	// Count is the user's unread messages in the chat, as store.ChatSummary.Unread
	// counts them (what a person reads: no system events, edits, deletes, reactions,
	// deleted or own messages; at most store.MaxUnread), every message of the
	// coalescing window included.
	Count uint64 `json:"count"`
	// Badge is the user's unread messages over all their chats.
	Badge       uint64  `json:"badge"`
	LastMessage Preview `json:"lastMessage"`
	// Devices are the user's registered push devices (POST /api/v1/devices), so a
	// push gateway sends to them with no mapping of its own; empty when there are
	// none. A gateway that finds a token invalid says so in its answer (Answer).
	Devices []Device `json:"devices"`
	// CreatedAt is ms since the epoch when the notification was built.
	CreatedAt int64 `json:"createdAt"`
}

// Device is a push device of a notification.
type Device struct {
	DeviceID string `json:"deviceId"`
	Platform string `json:"platform"`
	Provider string `json:"provider"`
	Token    string `json:"token"`
}

// Answer is what a webhook receiver may answer (with any 2xx): the push tokens of
// the notification that the provider refused as invalid (unregistered, expired);
// Natter removes those devices. Any other answer body is ignored.
type Answer struct {
	InvalidTokens []InvalidToken `json:"invalidTokens"`
}

// InvalidToken names one refused push token.
type InvalidToken struct {
	Provider string `json:"provider"`
	Token    string `json:"token"`
}

// Preview is the last message of a notification.
type Preview struct {
	Seq         uint64 `json:"seq"`
	MessageID   string `json:"messageId"`
	SenderID    string `json:"senderId"`
	MessageType string `json:"messageType"`
	// Content is the first notifier.preview-bytes of the content (absent with 0,
	// and always absent in an end-to-end encrypted chat); Truncated says it was cut.
	Content   string `json:"content,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	Timestamp int64  `json:"timestamp"`
}

// TypeMessages is Notification.Type for new messages.
const TypeMessages = "messages"

// onWindow handles one message of the window consumer: a closed window (a removal
// marker) becomes a notification.
func (n *Notifier) onWindow(ctx context.Context, jm jetstream.Msg) {
	h := jm.Headers()
	if h.Get("Nats-Marker-Reason") == "" && h.Get("KV-Operation") == "" {
		_ = jm.Ack() // the window opening
		return
	}
	progress := func() { _ = jm.InProgress() }
	var notify func() error
	if chat, ok := strings.CutPrefix(jm.Subject(), "$KV."+WindowBucket+".c."); ok {
		notify = func() error { return n.notifyChat(ctx, chat, progress) } // large.go
	} else {
		rest := strings.TrimPrefix(jm.Subject(), "$KV."+WindowBucket+".w.")
		uid, chat, ok := strings.Cut(rest, ".")
		if !ok {
			_ = jm.Term()
			return
		}
		if h.Get("Nats-Marker-Reason") != "" {
			if md, err := jm.Metadata(); err == nil {
				n.closed.closed(windowKey(uid, chat), md.Sequence.Stream) // closed.go: the next window is one write
			}
		}
		notify = func() error { return n.notify(ctx, uid, chat, progress) }
	}
	if err := notify(); err != nil {
		if errors.Is(err, errPassesBusy) { // pacing.go: retried once a pass slot frees
			_ = jm.NakWithDelay(passBusyDelay)
			return
		}
		if ctx.Err() == nil {
			n.log.Warn("notification failed; retrying", zap.String("window", jm.Subject()), zap.Error(err))
		}
		_ = jm.NakWithDelay(2 * time.Second)
		return
	}
	_ = jm.Ack()
}

// notify builds and sends uid's notification about chat, unless uid is connected or
// muted it by now, left it, or has nothing unread. A webhook that fails every attempt
// sends the notification to NATTER_DLQ; an error is returned only when the
// notification could be neither built nor kept (then the window is retried).
func (n *Notifier) notify(ctx context.Context, uid, chat string, progress func()) error {
	bctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	note, decided, err := n.build(bctx, uid, chat)
	if err == nil && note != nil {
		err = n.send(ctx, note, progress)
	}
	if err == nil && decided > 0 {
		n.closed.cover(windowKey(uid, chat), decided) // closed.go
	}
	return err
}

// send publishes note on natter.notify.<uid> and delivers it to the webhook, or to
// NATTER_DLQ when every webhook attempt fails. An error means it could be neither
// delivered nor kept.
func (n *Notifier) send(ctx context.Context, note *Notification, progress func()) error {
	body, _ := json.Marshal(note)
	return n.sendBody(ctx, note, body, progress)
}

// sendBody is send with note's JSON already encoded (body).
func (n *Notifier) sendBody(ctx context.Context, note *Notification, body []byte, progress func()) error {
	uid, chat := note.UserID, note.ChatID
	if err := n.deps.NC.Publish(n.deps.Subjects.Notify(uid), body); err != nil {
		return fmt.Errorf("publish notification: %w", err)
	}
	n.sent.Add(1)
	if n.hook == nil {
		return nil
	}
	attempts, answer, err := n.hook.deliverAnswer(ctx, note.ID, body, progress)
	if err == nil {
		n.dropInvalidTokens(ctx, note, answer)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	n.log.Warn("webhook failed; notification kept in the dead-letter stream", zap.String("user_id", uid),
		zap.String("chat_id", chat), zap.String("id", note.ID), zap.Int("attempts", attempts), zap.Error(err))
	return n.deadLetter(ctx, note.ID, body, attempts, err)
}

// build returns uid's notification about chat, nil when none is due. decided is
// the seq of the chat's newest message when the answer was decided from it (a
// notification, or none because it was read, expired or nothing in the window
// counts), 0 when it was decided before (uid connected, muted the chat, left it).
//
// What the store knows of uid in chat (membership, mute, read state, the chat
// itself) is one read (store.RecipientStore.Recipient), made after the chat's newest
// message is known, so the read state is at least as new as that message.
func (n *Notifier) build(ctx context.Context, uid, chat string) (note *Notification, decided uint64, err error) {
	if online, err := n.online(ctx, uid); err != nil || online {
		return nil, 0, err
	}
	last, newest, err := n.lastMessage(ctx, chat)
	if err != nil || last == nil {
		return nil, 0, err
	}
	r, err := n.deps.Store.Recipient(ctx, chat, uid)
	if err != nil {
		return nil, 0, fmt.Errorf("%s in %s: %w", uid, chat, err)
	}
	if !r.Member || r.Mute.Active(time.Now()) {
		return nil, 0, nil // left the chat meanwhile, or muted it
	}
	if last.Expired(time.Now().UnixMilli()) {
		return nil, last.Seq, nil // gone before it was pushed (docs/privacy.md, "Retention")
	}
	if last.Seq <= r.Read.Read {
		return nil, last.Seq, nil // read meanwhile
	}
	count, err := n.unread(ctx, chat, uid, r.Read.Read, last.Seq, newest)
	if err != nil {
		return nil, 0, err
	}
	if count == 0 {
		return nil, last.Seq, nil // nothing to read: reactions, edits, system events
	}
	if note, err = n.buildNote(ctx, uid, chat, r.Chat, last, count); err != nil {
		return nil, 0, err
	}
	return note, last.Seq, nil
}

// buildNote is the rest of build: uid's notification about chat (c as the store
// has it, zero if it is gone), whose newest message is last, with count unread.
func (n *Notifier) buildNote(ctx context.Context, uid, chat string, c store.Chat, last *protocol.Message, count uint64) (*Notification, error) {
	badge, err := n.badge(ctx, uid, chat, count)
	if err != nil {
		return nil, err
	}
	id := uid + "." + chat + "." + strconv.FormatUint(last.Seq, 10)
	if last, err = n.shownLast(ctx, chat, last); err != nil {
		return nil, err
	}
	note := &Notification{ID: id, Type: TypeMessages,
		UserID: uid, ChatID: chat, Count: count, Badge: badge, CreatedAt: time.Now().UnixMilli(),
		LastMessage: Preview{Seq: last.Seq, MessageID: last.MessageID, SenderID: last.SenderID,
			MessageType: last.MessageType, Timestamp: last.Timestamp}}
	note.ChatType, note.ChatName, note.Encrypted = c.Kind, c.Name, c.Encrypted
	if previewable(c, last) {
		// A disappearing message is never previewed: a push provider and the device
		// keep a notification's text beyond the message's life. Nor is ciphertext:
		// the notifier does not read it.
		note.LastMessage.Content, note.LastMessage.Truncated = preview(last.Content, n.cfg.PreviewBytes)
	}
	if blocked, err := n.blockLists.Blocks(ctx, uid, last.SenderID); err != nil {
		return nil, err
	} else if blocked { // blocks.go: no preview of a blocked sender's message
		note.LastMessage = Preview{Seq: last.Seq, MessageID: last.MessageID, MessageType: last.MessageType, Timestamp: last.Timestamp}
	}
	if note.Devices, err = n.devices(ctx, uid); err != nil {
		return nil, err
	}
	return note, nil
}

// devices returns uid's push devices as a notification carries them.
func (n *Notifier) devices(ctx context.Context, uid string) ([]Device, error) {
	devs, err := n.deps.Store.Devices(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", uid, err)
	}
	out := make([]Device, 0, len(devs))
	for _, d := range devs {
		out = append(out, Device{DeviceID: d.DeviceID, Platform: d.Platform, Provider: d.Provider, Token: d.Token})
	}
	return out, nil
}

// dropInvalidTokens removes the devices whose tokens the webhook's answer names as
// invalid. Only tokens of this notification's user count, so a receiver cannot
// remove another user's devices. Failures are logged: the next notification's
// answer names the token again.
func (n *Notifier) dropInvalidTokens(ctx context.Context, note *Notification, answer []byte) {
	if len(answer) == 0 || len(note.Devices) == 0 {
		return
	}
	var a Answer
	if json.Unmarshal(answer, &a) != nil {
		return // not an Answer: any 2xx body is fine
	}
	for _, t := range a.InvalidTokens {
		if !slices.ContainsFunc(note.Devices, func(d Device) bool { return d.Provider == t.Provider && d.Token == t.Token }) {
			continue
		}
		removed, err := n.deps.Store.DeleteDeviceToken(ctx, note.UserID, t.Provider, t.Token)
		if err != nil {
			n.log.Warn("removing an invalid push token failed", zap.String("user_id", note.UserID), zap.String("provider", t.Provider), zap.Error(err))
			continue
		}
		if removed {
			n.tokensDropped.Add(1)
			n.log.Info("push device removed: its token is invalid", zap.String("user_id", note.UserID), zap.String("provider", t.Provider))
		}
	}
}

// preview cuts s to at most max bytes at a UTF-8 boundary.
func preview(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}

// previewable reports whether last, a message of chat c, may have its content in a
// notification. A disappearing message is never previewed: a push provider and the
// device keep a notification's text beyond the message's life. Nor is ciphertext (an
// encrypted chat's, or an encrypted type anywhere): the notifier does not read it.
func previewable(c store.Chat, last *protocol.Message) bool {
	return last.ExpiresAt == 0 && !c.Encrypted && last.MessageType != protocol.TypeEncrypted &&
		last.MessageType != protocol.TypeEncryptedKeys
}

// shownLast is the message a notification shows for last, chat's newest message:
// last itself, unless it is a key distribution (protocol.TypeEncryptedKeys, which
// no person reads and no client shows), then the newest message before it that a
// person reads (protocol.Readable, not deleted) within one page; last if none.
func (n *Notifier) shownLast(ctx context.Context, chat string, last *protocol.Message) (*protocol.Message, error) {
	if last.MessageType != protocol.TypeEncryptedKeys {
		return last, nil
	}
	q := store.HistoryQuery{Dir: store.Backward, Before: last.Seq, Limit: store.MaxPage}
	var page []protocol.Message
	var err error
	if n.deps.History != nil {
		page, err = n.deps.History.Page(ctx, chat, q)
	} else {
		page, err = n.deps.Store.History(ctx, chat, q)
	}
	if err != nil {
		return nil, fmt.Errorf("last message of %s: %w", chat, err)
	}
	for i := range page {
		if protocol.Readable(page[i].MessageType) && !page[i].Deleted {
			return &page[i], nil
		}
	}
	return last, nil
}

// lastMessage returns chat's newest message, and the NATTER_LOG message it was
// decoded from: from NATTER_LOG, or from the store once the log no longer holds it
// (newest nil: stored for certain, since the log is trimmed only below the
// persister's ack floor). nil if the chat has none.
func (n *Notifier) lastMessage(ctx context.Context, chat string) (last *protocol.Message, newest *jetstream.RawStreamMsg, err error) {
	raw, err := n.logs.GetLastMsgForSubject(ctx, n.deps.Subjects.Log(chat))
	if err == nil {
		m, err := protocol.DecodeMessageFrame(raw.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("last message of %s: %w", chat, err)
		}
		return &m, raw, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, fmt.Errorf("last message of %s: %w", chat, err)
	}
	page, err := n.deps.Store.History(ctx, chat, store.HistoryQuery{Limit: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("last message of %s: %w", chat, err)
	}
	if len(page) == 0 {
		return nil, nil, nil
	}
	return &page[0], nil, nil
}

// stored reports whether the store holds every log message up to stream seq logSeq
// (the persister's ack floor has reached it); false when the floor cannot be read.
func (n *Notifier) stored(ctx context.Context, logSeq uint64) bool {
	floor, err := n.deps.History.PersistedFloorAtLeast(ctx, logSeq)
	return err == nil && logSeq <= floor
}

// unread counts uid's unread messages in chat after seq read, up to seq last (read
// from newest, its NATTER_LOG message; nil: from the store), as
// store.ChatSummary.Unread does (store.Countable, at most store.MaxUnread).
//
// Once the persister's ack floor has reached newest, the store holds every message
// of chat up to last in its current state, and one count in the store answers
// (Store.UnreadBetween). Before that, it pages forward from the watermark through
// History, which merges the log tail the store lacks, up to newest (PageUpTo: the
// newest message is not read again): it reads what is unread, never what was read,
// but decodes each message, up to MaxUnread of them (ten pages). That paging was
// 5–6 % of the CPU in a profile of a backend publishing to offline users
// (docs/performance.md, "Counting a notification's unread messages").
func (n *Notifier) unread(ctx context.Context, chat, uid string, read, last uint64, newest *jetstream.RawStreamMsg) (uint64, error) {
	if n.deps.History == nil || newest == nil || n.stored(ctx, newest.Sequence) {
		return n.deps.Store.UnreadBetween(ctx, chat, uid, read, last)
	}
	var count uint64
	for count < store.MaxUnread && read < last {
		q := store.HistoryQuery{Dir: store.Forward, After: read, Limit: store.MaxPage}
		page, err := n.deps.History.PageUpTo(ctx, chat, q, newest)
		if err != nil {
			return 0, fmt.Errorf("unread of %s in %s: %w", uid, chat, err)
		}
		for i := range page {
			if page[i].Seq <= last && store.Countable(&page[i], uid) {
				count++
			}
		}
		if len(page) < store.MaxPage {
			break
		}
		read = page[len(page)-1].Seq
	}
	return min(count, store.MaxUnread), nil
}

// badge sums uid's unread messages over their chats, counting chat (whose store
// entry may lag the log) as count. The store sums in one query (Store.UnreadTotal)
// instead of listing every chat: listing cost O(chats) sorted rows with their last
// messages per notification, seconds per badge at a million chats.
func (n *Notifier) badge(ctx context.Context, uid, chat string, count uint64) (uint64, error) {
	others, err := n.deps.Store.UnreadTotal(ctx, uid, chat)
	if err != nil {
		return 0, fmt.Errorf("unread of %s: %w", uid, err)
	}
	return count + others, nil
}

// Headers of a dead letter.
const (
	headerAttempts = "Natter-Attempts"
	headerError    = "Natter-Error"
	headerFailedAt = "Natter-Failed-At"
)

// deadLetter keeps a notification that could not be delivered in NATTER_DLQ.
func (n *Notifier) deadLetter(ctx context.Context, id string, body []byte, attempts int, cause error) error {
	m := &nats.Msg{Subject: n.deps.Subjects.DLQ("notify"), Data: body, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Header.Set(headerAttempts, strconv.Itoa(attempts))
	msg := cause.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	m.Header.Set(headerError, msg)
	m.Header.Set(headerFailedAt, time.Now().UTC().Format(time.RFC3339))
	if _, err := n.deps.JS.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("dead-letter %s: %w", id, err)
	}
	return nil
}

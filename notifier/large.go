package notifier

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Large chats (docs/presence.md, "Large chats").
//
// In a chat with more than notifier.large-chat-members members, a message does not
// open one window per recipient (a KV read, a mute read and a KV create for each of
// up to 100,000 members, for every message): it opens ONE window for the chat, key
// "c.<chat>", with the same TTL. Every message of the chat until it closes is
// folded into it. When it closes, one instance (the window consumer is shared)
// walks the chat's members in pages of notifier.batch-size, in user ID order, and
// for each batch drops who has a connected device (the presence view, as for a
// small chat), who muted the chat (the chat's mutes, read once per window) and who
// has nothing unread, then builds and sends each remaining member's notification
// as a small chat's window does: one per user and chat per window, with the same
// ID scheme (so a redelivered window, after a crash part way, sends notifications
// that receivers deduplicate). The chat's last message, metadata and recent
// history are read once per window, not per member; per batch it costs one read of
// the members' read states, and one of the unread totals (badges) and one of the
// devices of those with something unread (notifyBatch).
//
// At most notifier.max-recipients members are notified per window (the first in
// user ID order); the others are counted in notifier_recipients_over_limit_total
// and logged, never dropped silently. A window charges its sender's push budget
// once (budget.go), however many members it notifies.

// chatWindowKey is the key of chat's window in a large chat.
func chatWindowKey(chat string) string { return "c." + chat }

// largeStats are the counters of the large-chat path.
type largeStats struct {
	windows   atomic.Int64 // chat windows closed and handled
	batches   atomic.Int64 // member batches handled
	overLimit atomic.Int64 // members not notified: past notifier.max-recipients
}

// openChatWindow opens chat's window for m unless one is open.
func (n *Notifier) openChatWindow(ctx context.Context, m *protocol.Message) error {
	key := chatWindowKey(m.ChatID)
	if _, err := n.windows.Get(ctx, key); err == nil {
		return nil // folded into the open window
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("window %s: %w", key, err)
	}
	ok, undo := n.budget.take(m.SenderID)
	if !ok {
		return nil
	}
	if _, err := n.windows.Create(ctx, key, nil, jetstream.KeyTTL(wholeSeconds(n.cfg.Window))); err != nil {
		undo()
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("open window %s: %w", key, err)
		}
	}
	return nil
}

// chatTail is what a chat window's notifications share: the chat, its last message
// and its recent countable messages, read once.
type chatTail struct {
	chat store.Chat
	last *protocol.Message
	// shown is what the notifications show as the last message (shownLast).
	shown *protocol.Message
	// seqs are the seqs of the newest countable messages (store.Countable for a
	// viewer who is not their sender), ascending; senders[i] sent seqs[i]. There
	// are MaxUnread+64 of them, or all the chat has.
	seqs    []uint64
	senders []string
	// enc encodes the chat's notifications (encode.go).
	enc *noteEncoder
}

// unread is uid's unread count after read, as store.ChatSummary.Unread counts it:
// exact, unless uid sent more than 64 of the chat's last MaxUnread+64 countable
// messages and read none of them (then it may be lower than store's count).
func (t *chatTail) unread(uid string, read uint64) uint64 {
	if read >= t.last.Seq {
		return 0
	}
	i := sort.Search(len(t.seqs), func(i int) bool { return t.seqs[i] > read })
	var count uint64
	for j := i; j < len(t.seqs); j++ {
		if t.senders[j] != uid {
			count++
		}
	}
	return min(count, store.MaxUnread)
}

// loadTail reads chat's last message and the countable messages back to MaxUnread
// of them (or the chat's start), newest first, a page at a time.
func (n *Notifier) loadTail(ctx context.Context, chat string) (*chatTail, error) {
	last, _, err := n.lastMessage(ctx, chat)
	if err != nil || last == nil {
		return nil, err
	}
	t := &chatTail{last: last}
	if c, err := n.deps.Store.GetChat(ctx, chat); err == nil {
		t.chat = c
	}
	if t.shown, err = n.shownLast(ctx, chat, last); err != nil {
		return nil, err
	}
	before := last.Seq + 1
	var seqs []uint64
	var senders []string
	// Counting is per viewer (own messages do not count), so keep a little more
	// than MaxUnread: a viewer's own messages among them are not counted.
	for len(seqs) <= store.MaxUnread+64 && before > 1 {
		q := store.HistoryQuery{Dir: store.Backward, Before: before, Limit: store.MaxPage}
		var page []protocol.Message
		if n.deps.History != nil {
			page, err = n.deps.History.Page(ctx, chat, q)
		} else {
			page, err = n.deps.Store.History(ctx, chat, q)
		}
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", chat, err)
		}
		for i := range page {
			if page[i].Seq <= last.Seq && store.Countable(&page[i], "") {
				seqs = append(seqs, page[i].Seq)
				senders = append(senders, page[i].SenderID)
			}
		}
		if len(page) == 0 {
			break
		}
		before = page[len(page)-1].Seq
		if len(page) < store.MaxPage {
			break
		}
	}
	// Ascending, for unread's search.
	for i, j := 0, len(seqs)-1; i < j; i, j = i+1, j-1 {
		seqs[i], seqs[j] = seqs[j], seqs[i]
		senders[i], senders[j] = senders[j], senders[i]
	}
	t.seqs, t.senders = seqs, senders
	t.enc = newNoteEncoder(n.chatNote(t, "u", 0, 0, nil))
	return t, nil
}

// notifyChat handles a closed chat window: every offline, unmuted member with
// something unread gets a notification, batch by batch, paced, one pass per chat
// at a time (pacing.go). A window that closes during this chat's pass is folded
// into it: the pass reloads the tail and mutes before its next batch, walks on to
// the end of the members (or the limit) and wraps round to the members it walked
// before the reload. errPassesBusy: every pass slot is taken (retry the window).
func (n *Notifier) notifyChat(ctx context.Context, chat string, progress func()) error {
	ps, folded, err := n.passes.begin(chat)
	if err != nil || folded {
		return err
	}
	finished := false
	defer func() {
		if !finished {
			n.passes.end(chat)
		}
	}()
	// A paced batch can outlast the window consumer's AckWait: the marker is
	// marked in progress as notifications go, at most once a second.
	progress = throttle(progress, time.Second)
	t, muted, err := n.loadPass(ctx, chat)
	if err != nil || t == nil {
		return err
	}
	n.large.windows.Add(1)
	began, paced := time.Now(), n.passes.pacedNs.Load()
	var walked, sent int
	// from: the last member walked before the tail was (re)loaded ("": none), so
	// the lap is the members after from to the end, then, wrapped, those up to
	// from. pos: how many members of the list come before after (the limit).
	from, after, wrapped, pos := "", "", false, 0
	for {
		if ps.newer.Swap(false) {
			nt, nm, err := n.loadPass(ctx, chat)
			if err != nil {
				return err
			}
			if nt != nil {
				t, muted = nt, nm
			}
			from, wrapped = after, false
		}
		page, err := n.deps.Store.MembersPage(ctx, chat, after, n.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("members of %s: %w", chat, err)
		}
		last := len(page) < n.cfg.BatchSize // the member list ends here
		if wrapped {
			if i := sort.Search(len(page), func(i int) bool { return page[i].UserID > from }); i < len(page) {
				page, last = page[:i], true
			}
		}
		if len(page) > 0 {
			after = page[len(page)-1].UserID
		}
		if room := n.cfg.MaxRecipients - pos; len(page) > room {
			over := len(page) - room
			page, last = page[:room], true
			n.large.overLimit.Add(int64(over))
			n.countOverLimit(ctx, chat, after)
			n.log.Warn("large chat over notifier.max-recipients: the members after the limit are not notified",
				zap.String("chat_id", chat), zap.Int("limit", n.cfg.MaxRecipients))
		}
		pos += len(page)
		if len(page) > 0 {
			k, err := n.notifyBatch(ctx, t, page, muted, progress)
			sent += k
			if err != nil {
				return err
			}
			walked += len(page)
			n.passes.walked.Add(int64(len(page)))
			n.large.batches.Add(1)
			progress()
		}
		if !last {
			continue
		}
		if (wrapped || from == "") && n.passes.finish(chat, ps) {
			finished = true
			n.log.Info("large chat notified", zap.String("chat_id", chat), zap.Int("members", walked),
				zap.Int("notifications", sent), zap.Duration("took", time.Since(began)),
				zap.Duration("paced", time.Duration(n.passes.pacedNs.Load()-paced)))
			return nil
		}
		if wrapped || from == "" {
			// A window was folded in during the lap's last batch: reload and walk
			// the whole lap again, from here round to here.
			continue
		}
		wrapped, after, pos = true, "", 0
	}
}

// loadPass reads what a pass over chat's members shares: the tail (nil: the chat
// has no message) and who muted the chat.
func (n *Notifier) loadPass(ctx context.Context, chat string) (*chatTail, map[string]bool, error) {
	t, err := n.loadTail(ctx, chat)
	if err != nil || t == nil {
		return nil, nil, err
	}
	mutes, err := n.deps.Store.ChatMutes(ctx, chat)
	if err != nil {
		return nil, nil, fmt.Errorf("mutes of %s: %w", chat, err)
	}
	now := time.Now()
	muted := make(map[string]bool, len(mutes))
	for _, m := range mutes {
		if m.Active(now) {
			muted[m.UserID] = true
		}
	}
	return t, muted, nil
}

// countOverLimit adds the members after cursor after (past the limit) to the
// over-limit counter.
func (n *Notifier) countOverLimit(ctx context.Context, chat, after string) {
	for {
		page, err := n.deps.Store.MembersPage(ctx, chat, after, store.MaxMemberPage)
		if err != nil || len(page) == 0 {
			return
		}
		n.large.overLimit.Add(int64(len(page)))
		after = page[len(page)-1].UserID
	}
}

// notifyBatch notifies the members of page who should hear of t's chat and
// returns how many notifications it sent. The batch's store reads are three, not
// three per member: the read states of every member the presence view shows
// offline, then the unread totals (badges) and devices of those with something
// unread (store.RecipientStore). The notifications are then built and sent
// recipientParallel at a time (the webhook, when configured, is a round trip
// each), each after taking its token of notifier.large-chat-rate (pacing.go).
func (n *Notifier) notifyBatch(ctx context.Context, t *chatTail, page []store.Member, muted map[string]bool, progress func()) (int, error) {
	uids := make([]string, 0, len(page))
	for _, m := range page {
		if !muted[m.UserID] {
			uids = append(uids, m.UserID)
		}
	}
	uids, check := n.recipients(ctx, uids, "")
	if len(uids) == 0 {
		return 0, nil
	}
	chat := t.last.ChatID
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	states, err := n.deps.Store.ReadStates(rctx, chat, uids)
	if err != nil {
		return 0, fmt.Errorf("read states in %s: %w", chat, err)
	}
	due := make([]string, 0, len(uids))
	counts := make([]uint64, 0, len(uids))
	for _, uid := range uids {
		if count := t.unread(uid, states[uid].Read); count > 0 {
			due = append(due, uid)
			counts = append(counts, count)
		}
	}
	if len(due) == 0 {
		return 0, nil
	}
	others, err := n.deps.Store.UnreadTotals(rctx, due, chat)
	if err != nil {
		return 0, fmt.Errorf("unread totals: %w", err)
	}
	devices, err := n.deps.Store.UsersDevices(rctx, due)
	if err != nil {
		return 0, fmt.Errorf("devices: %w", err)
	}
	var sent atomic.Int64
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(recipientParallel)
	credit := 0 // tokens of notifier.large-chat-rate taken and not used yet
	var waitErr error
	for i, uid := range due {
		if credit == 0 {
			credit = min(n.passes.chunk(), len(due)-i)
			if waitErr = n.passes.wait(ectx, credit); waitErr != nil {
				break
			}
		}
		credit--
		eg.Go(func() error {
			if check {
				cctx, cancel := context.WithTimeout(ectx, opTimeout)
				online, err := n.connected(cctx, uid)
				cancel()
				if err != nil || online {
					return err
				}
			}
			note := n.chatNote(t, uid, counts[i], counts[i]+others[uid], devices[uid])
			if err := n.sendBody(ectx, note, t.enc.encode(note), progress); err != nil {
				return err
			}
			sent.Add(1)
			n.passes.notified.Add(1)
			progress()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return int(sent.Load()), err
	}
	return int(sent.Load()), waitErr
}

// chatNote is uid's notification about t's chat: count unread there, badge in
// all, sent to devs.
func (n *Notifier) chatNote(t *chatTail, uid string, count, badge uint64, devs []store.Device) *Notification {
	shown := t.shown
	note := &Notification{ID: uid + "." + t.last.ChatID + "." + strconv.FormatUint(t.last.Seq, 10), Type: TypeMessages,
		UserID: uid, ChatID: t.last.ChatID, ChatType: t.chat.Kind, ChatName: t.chat.Name, Encrypted: t.chat.Encrypted,
		Count: count, Badge: badge, CreatedAt: time.Now().UnixMilli(), LastMessage: Preview{Seq: shown.Seq, MessageID: shown.MessageID,
			SenderID: shown.SenderID, MessageType: shown.MessageType, Timestamp: shown.Timestamp}}
	if previewable(t.chat, shown) {
		note.LastMessage.Content, note.LastMessage.Truncated = preview(shown.Content, n.cfg.PreviewBytes)
	}
	note.Devices = make([]Device, 0, len(devs))
	for _, d := range devs {
		note.Devices = append(note.Devices, Device{DeviceID: d.DeviceID, Platform: d.Platform, Provider: d.Provider, Token: d.Token})
	}
	return note
}

// LargeChatStats returns the large-chat path's counters: chat windows handled,
// member batches handled, and members not notified for being past
// notifier.max-recipients.
func (n *Notifier) LargeChatStats() (windows, batches, overLimit int64) {
	return n.large.windows.Load(), n.large.batches.Load(), n.large.overLimit.Load()
}

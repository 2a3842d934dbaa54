package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// storeOpNames are the op label values of natter_store_seconds.
var storeOpNames = []string{
	"append_messages", "history", "last_seq", "message_seq", "message_seqs", "create_chat", "get_chat",
	"members", "get_member", "add_member", "remove_member", "user_chats", "unread_total", "unread_between",
	"set_read_state", "get_read_state", "recipient", "ping",
}

// InstrumentStore returns s with every call timed into natter_store_seconds{op},
// failures counted in natter_store_errors_total{op}, and the size of every
// AppendMessages batch (the persister's) observed in natter_persister_batch_size.
// With a nil m it returns s unchanged. Unwrap returns s.
func InstrumentStore(s store.Store, m *Metrics) store.Store {
	if m == nil || s == nil {
		return s
	}
	w := &instrumented{Store: s, s: s, m: m}
	if sr, ok := s.(store.Searcher); ok {
		return &instrumentedSearcher{instrumented: w, sr: sr}
	}
	return w
}

// Unwrap returns the store under an InstrumentStore wrapper, or s itself.
func Unwrap(s store.Store) store.Store {
	switch w := s.(type) {
	case *instrumented:
		return w.s
	case *instrumentedSearcher:
		return w.s
	}
	return s
}

// instrumented embeds the store, so a method added to store.Store later passes
// through (untimed) until it gets its wrapper here.
type instrumented struct {
	store.Store
	s store.Store
	m *Metrics
}

var _ store.Store = (*instrumented)(nil)

// instrumentedSearcher wraps a store that searches: the wrapper keeps the side
// interface store.Searcher of the store it wraps (a search passes through untimed).
type instrumentedSearcher struct {
	*instrumented
	sr store.Searcher
}

var _ store.Searcher = (*instrumentedSearcher)(nil)

func (w *instrumentedSearcher) Search(ctx context.Context, userID string, q store.SearchQuery) ([]protocol.Message, error) {
	return w.sr.Search(ctx, userID, q)
}

// done records one call of op that started at start.
func (w *instrumented) done(op string, start time.Time, err error) {
	w.m.storeOps[op].Observe(time.Since(start).Seconds())
	if err != nil {
		w.m.storeErrs[op].Inc()
	}
}

func (w *instrumented) AppendMessages(ctx context.Context, msgs []protocol.Message) error {
	w.m.batchSize.Observe(float64(len(msgs)))
	start := time.Now()
	err := w.s.AppendMessages(ctx, msgs)
	w.done("append_messages", start, err)
	return err
}

func (w *instrumented) History(ctx context.Context, chatID string, q store.HistoryQuery) ([]protocol.Message, error) {
	start := time.Now()
	out, err := w.s.History(ctx, chatID, q)
	w.done("history", start, err)
	return out, err
}

func (w *instrumented) LastSeq(ctx context.Context, chatID string) (uint64, error) {
	start := time.Now()
	out, err := w.s.LastSeq(ctx, chatID)
	w.done("last_seq", start, err)
	return out, err
}

func (w *instrumented) MessageSeq(ctx context.Context, chatID, messageID string) (uint64, error) {
	start := time.Now()
	out, err := w.s.MessageSeq(ctx, chatID, messageID)
	w.done("message_seq", start, ignoreNotFound(err))
	return out, err
}

func (w *instrumented) MessageSeqs(ctx context.Context, keys []store.MessageKey) (map[store.MessageKey]uint64, error) {
	start := time.Now()
	out, err := w.s.MessageSeqs(ctx, keys)
	w.done("message_seqs", start, err)
	return out, err
}

func (w *instrumented) CreateChat(ctx context.Context, chat store.Chat, members []store.Member) (store.Chat, bool, error) {
	start := time.Now()
	out, created, err := w.s.CreateChat(ctx, chat, members)
	w.done("create_chat", start, err)
	return out, created, err
}

func (w *instrumented) GetChat(ctx context.Context, chatID string) (store.Chat, error) {
	start := time.Now()
	out, err := w.s.GetChat(ctx, chatID)
	w.done("get_chat", start, ignoreNotFound(err))
	return out, err
}

func (w *instrumented) Members(ctx context.Context, chatID string) ([]store.Member, error) {
	start := time.Now()
	out, err := w.s.Members(ctx, chatID)
	w.done("members", start, err)
	return out, err
}

func (w *instrumented) GetMember(ctx context.Context, chatID, userID string) (store.Member, error) {
	start := time.Now()
	out, err := w.s.GetMember(ctx, chatID, userID)
	w.done("get_member", start, ignoreNotFound(err))
	return out, err
}

func (w *instrumented) AddMember(ctx context.Context, mb store.Member) error {
	start := time.Now()
	err := w.s.AddMember(ctx, mb)
	w.done("add_member", start, err)
	return err
}

func (w *instrumented) RemoveMember(ctx context.Context, chatID, userID string) error {
	start := time.Now()
	err := w.s.RemoveMember(ctx, chatID, userID)
	w.done("remove_member", start, err)
	return err
}

func (w *instrumented) UserChats(ctx context.Context, userID string, limit, offset int) ([]store.ChatSummary, error) {
	start := time.Now()
	out, err := w.s.UserChats(ctx, userID, limit, offset)
	w.done("user_chats", start, err)
	return out, err
}

func (w *instrumented) UnreadTotal(ctx context.Context, userID, exceptChatID string) (uint64, error) {
	start := time.Now()
	n, err := w.s.UnreadTotal(ctx, userID, exceptChatID)
	w.done("unread_total", start, err)
	return n, err
}

func (w *instrumented) UnreadBetween(ctx context.Context, chatID, userID string, after, upTo uint64) (uint64, error) {
	start := time.Now()
	n, err := w.s.UnreadBetween(ctx, chatID, userID, after, upTo)
	w.done("unread_between", start, err)
	return n, err
}

func (w *instrumented) SetReadState(ctx context.Context, chatID, userID string, delivered, read uint64) (store.ReadState, error) {
	start := time.Now()
	out, err := w.s.SetReadState(ctx, chatID, userID, delivered, read)
	w.done("set_read_state", start, err)
	return out, err
}

func (w *instrumented) GetReadState(ctx context.Context, chatID, userID string) (store.ReadState, error) {
	start := time.Now()
	out, err := w.s.GetReadState(ctx, chatID, userID)
	w.done("get_read_state", start, err)
	return out, err
}

func (w *instrumented) Recipient(ctx context.Context, chatID, userID string) (store.Recipient, error) {
	start := time.Now()
	out, err := w.s.Recipient(ctx, chatID, userID)
	w.done("recipient", start, err)
	return out, err
}

func (w *instrumented) Ping(ctx context.Context) error {
	start := time.Now()
	err := w.s.Ping(ctx)
	w.done("ping", start, err)
	return err
}

// Close closes the wrapped store.
func (w *instrumented) Close() error { return w.s.Close() }

// ignoreNotFound keeps an expected "not found" answer out of the error count.
func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Full-text search on Cassandra, with Storage-Attached Indexes (SAI).
//
// Apache Cassandra 5.0's SAI indexes a text column's whole value: its only analyzer
// is the non-tokenizing one (the Lucene analyzers came after 5.0). So Natter does the
// analysis itself, as SQLite's unicode61 tokenizer does it (words are runs of
// letters and digits, folded to lower case without diacritics), and SAI indexes the
// result: each searchable message has one row in message_search with its words and
// their prefixes as two sets, each with an SAI index, so "every word, the last also
// as a prefix" is one query of CONTAINS restrictions that SAI intersects.
//
// Rows are partitioned by (chat, part), part = seq / searchPart, so a query runs
// inside the partitions of the chats the user belongs to (never a scan of every
// chat), and an edit finds its target's row from the target's seq alone.
//
// A message has a row for its own text and one for each edit of it, all at the
// message's seq (op_seq tells them apart): an edit counts only if its author wrote
// the message, which the store learns only when it reads the message, so no row is
// overwritten and every result is checked against the message's current text
// before it is returned (an edited-away or refused text never shows). A delete
// removes the message's rows with a write timestamp above every seq, so no row
// written for it later (a retried batch) comes back. An operation whose target is
// not stored yet (two persisters racing) cannot find the target's seq: such targets
// are in chat_buckets.pending, which a query reads and checks by current state.
//
// Cost: a query reads the user's chat list, then per chat one SAI query per part
// (newest first) until it has a page; a chat's parts are few (searchPart seqs
// each). Results are newest first by timestamp, chat and seq, as on SQLite.

// searchPart is how many consecutive seqs share a message_search partition. Part of
// the on-disk format: never change it.
const searchPart = 1 << 16

// maxPrefixRunes bounds the prefixes indexed per word: a query's last word longer
// than this matches by its first maxPrefixRunes runes, then by the check of the
// current text.
const maxPrefixRunes = 24

// maxIndexedWords bounds the distinct words indexed per message (MaxContentBytes
// allows a few thousand).
const maxIndexedWords = 512

// searchReads bounds the concurrent per-chat reads of one query.
const searchReads = 16

// deleteForever is the write timestamp of a deleted message's row removal: above
// every seq, so no later insert or edit of that message can bring its words back.
const deleteForever = int64(1) << 62

const (
	cqlSearchInsert = `INSERT INTO message_search (chat_id, part, seq, op_seq, bucket, ts, words, prefixes)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?`
	cqlSearchDelete = `DELETE FROM message_search USING TIMESTAMP ? WHERE chat_id = ? AND part = ? AND seq = ?`
	cqlPending      = `SELECT pending FROM chat_buckets WHERE chat_id = ? LIMIT 1`
	cqlMessageAt    = `SELECT ` + cqlMsgCols + ` FROM messages WHERE chat_id = ? AND bucket = ? AND seq = ?`
)

// foldWords splits text into words as the search index sees them: runs of letters
// and digits, lower-cased, diacritics removed ("Café" is "cafe").
func foldWords(text string) []string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	folded, _, err := transform.String(t, text)
	if err != nil {
		folded = text
	}
	return strings.FieldsFunc(strings.ToLower(folded), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

// searchTerms returns the distinct folded words of text and their prefixes (1 to
// maxPrefixRunes runes), the two sets a message_search row indexes.
func searchTerms(text string) (words, prefixes []string) {
	seen := map[string]bool{}
	pseen := map[string]bool{}
	for _, w := range foldWords(text) {
		if seen[w] {
			continue
		}
		if len(seen) == maxIndexedWords {
			break
		}
		seen[w] = true
		words = append(words, w)
		rs := []rune(w)
		for n := 1; n <= len(rs) && n <= maxPrefixRunes; n++ {
			if p := string(rs[:n]); !pseen[p] {
				pseen[p] = true
				prefixes = append(prefixes, p)
			}
		}
	}
	return words, prefixes
}

// searchQuery is a parsed query: every word must be a word of the message, the last
// also as a prefix. It refuses what SQLite's ftsQuery refuses, with ErrBadSearch.
type searchQuery struct {
	words []string // all but the last
	last  string
}

func parseSearch(text string) (searchQuery, error) {
	raw, err := searchWords(text) // store_sqlite_search.go: the same words as SQLite
	if err != nil {
		return searchQuery{}, err
	}
	var words []string
	for _, w := range raw {
		words = append(words, foldWords(w)...)
	}
	if len(words) == 0 {
		return searchQuery{}, fmt.Errorf("%w: no word to search for", ErrBadSearch)
	}
	return searchQuery{words: words[:len(words)-1], last: words[len(words)-1]}, nil
}

// matches reports whether text holds every word of q, the last as a prefix of one.
func (q searchQuery) matches(text string) bool {
	have := foldWords(text)
	for _, w := range q.words {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return slices.ContainsFunc(have, func(h string) bool { return strings.HasPrefix(h, q.last) })
}

// cql returns the SAI query of one partition and its arguments after the key.
func (q searchQuery) cql() (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT seq, bucket, ts FROM message_search WHERE chat_id = ? AND part = ?`)
	var args []any
	for _, w := range q.words {
		b.WriteString(` AND words CONTAINS ?`)
		args = append(args, w)
	}
	last := q.last
	if r := []rune(last); len(r) > maxPrefixRunes {
		last = string(r[:maxPrefixRunes])
	}
	b.WriteString(` AND prefixes CONTAINS ?`)
	args = append(args, last)
	return b.String(), args
}

// searchOps returns the message_search writes of an appended batch: a row for each
// searchable message, a row at each edit's target with the edit's text, and the
// removal of each deleted target's rows. targets are the stored locations of the
// operations' targets (resolveTargets); operations whose target is not among them
// are found at query time through chat_buckets.pending.
//
// Ciphertext is never indexed: messages that are not protocol.Searchable, and edits
// of the targets in ciphertexts (encryptedTargets).
func searchOps(bucketOf func(int64) int64, msgs []protocol.Message, targets map[msgRef][]msgLoc, ciphertexts map[msgLoc]bool) []writeOp {
	var ops []writeOp
	add := func(chat string, e gocql.BatchEntry) {
		ops = append(ops, writeOp{what: "search index", chat: chat, entries: []gocql.BatchEntry{e}})
	}
	for i := range msgs {
		m := &msgs[i]
		seq := int64(m.Seq)
		switch {
		case protocol.Referable(m.MessageType):
			if !protocol.Searchable(m.MessageType) {
				continue
			}
			if words, prefixes := searchTerms(m.Content); len(words) > 0 {
				add(m.ChatID, entry(cqlSearchInsert, m.ChatID, seq/searchPart, seq, seq, bucketOf(m.Timestamp), m.Timestamp, words, prefixes, seq, ttlOf(m)))
			}
		case m.MessageType == protocol.TypeEdit || m.MessageType == protocol.TypeDelete:
			for _, l := range targets[msgRef{m.ChatID, m.RefID}] {
				if l.seq >= seq {
					continue // an operation applies to earlier messages only
				}
				if m.MessageType == protocol.TypeDelete {
					if ciphertexts[l] {
						continue // never indexed
					}
					add(l.chat, entry(cqlSearchDelete, deleteForever, l.chat, l.seq/searchPart, l.seq))
				} else if words, prefixes := searchTerms(m.Content); len(words) > 0 && !ciphertexts[l] {
					// ts unknown here (the target's time): left null, the row sorts by
					// its message's time once the message is read.
					add(l.chat, entry(cqlSearchInsert, l.chat, l.seq/searchPart, l.seq, seq, l.bucket, nil, words, prefixes, seq, ttlOf(m)))
				}
			}
		}
	}
	return ops
}

// cqlMessageType reads a stored message's type.
const cqlMessageType = `SELECT message_type FROM messages WHERE chat_id = ? AND bucket = ? AND seq = ?`

// encryptedTargets returns the targets of msgs' edits and deletes that are
// end-to-end encrypted messages (not protocol.Searchable), so that searchOps
// indexes no ciphertext of an edit. A target in msgs is known; one stored earlier
// costs one read (edits and deletes are few next to messages).
func (s *CassandraStore) encryptedTargets(ctx context.Context, msgs []protocol.Message, targets map[msgRef][]msgLoc) (map[msgLoc]bool, error) {
	types := map[msgLoc]string{}
	for i := range msgs {
		m := &msgs[i]
		types[msgLoc{m.ChatID, s.bucketOf(m.Timestamp), int64(m.Seq)}] = m.MessageType
	}
	var out map[msgLoc]bool
	for i := range msgs {
		m := &msgs[i]
		if m.MessageType != protocol.TypeEdit && m.MessageType != protocol.TypeDelete {
			continue
		}
		for _, l := range targets[msgRef{m.ChatID, m.RefID}] {
			typ, ok := types[l]
			if !ok {
				err := s.sess.Query(cqlMessageType, l.chat, l.bucket, l.seq).WithContext(ctx).Idempotent(true).Scan(&typ)
				if err != nil && !errors.Is(err, gocql.ErrNotFound) {
					return nil, fmt.Errorf("type of %s/%d: %w", l.chat, l.seq, err)
				}
				types[l] = typ
			}
			if typ == protocol.TypeEncrypted {
				if out == nil {
					out = map[msgLoc]bool{}
				}
				out[l] = true
			}
		}
	}
	return out, nil
}

// searchHit is a candidate result: a message's key and where its row is.
type searchHit struct {
	chat   string
	seq    int64
	bucket int64
	ts     int64
}

// olderThan reports whether h comes after cursor c in a newest-first result.
func (h searchHit) olderThan(c SearchCursor) bool {
	if c == (SearchCursor{}) {
		return true
	}
	if h.ts != c.Timestamp {
		return h.ts < c.Timestamp
	}
	if h.chat != c.ChatID {
		return h.chat < c.ChatID
	}
	return uint64(h.seq) < c.Seq
}

// Search implements Store with the SAI-indexed message_search table (see above).
func (s *CassandraStore) Search(ctx context.Context, userID string, q SearchQuery) ([]protocol.Message, error) {
	sq, err := parseSearch(q.Text)
	if err != nil {
		return nil, err
	}
	limit := q.pageSize()
	var chats []string
	if q.ChatID != "" {
		if _, err := s.GetMember(ctx, q.ChatID, userID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, nil // not a member: nothing to find
			}
			return nil, fmt.Errorf("cassandra: search: %w", err)
		}
		chats = []string{q.ChatID}
	} else {
		all, err := s.allUserChats(ctx, userID)
		if err != nil {
			return nil, fmt.Errorf("cassandra: search: %w", err)
		}
		for _, c := range all {
			chats = append(chats, c.ID)
		}
	}
	// Each chat contributes its newest limit matches below the cursor; the page is
	// the newest limit of them all.
	found := make([][]protocol.Message, len(chats))
	errs := make([]error, len(chats))
	sem := make(chan struct{}, searchReads)
	var wg sync.WaitGroup
	for i, chat := range chats {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			found[i], errs[i] = s.searchChat(ctx, chat, userID, sq, q.Before, limit)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cassandra: search: %w", err)
	}
	page := slices.Concat(found...)
	slices.SortFunc(page, newestMessageFirst)
	if len(page) > limit {
		page = page[:limit]
	}
	return page, nil
}

func newestMessageFirst(a, b protocol.Message) int {
	return cmp.Or(cmp.Compare(b.Timestamp, a.Timestamp), cmp.Compare(b.ChatID, a.ChatID), cmp.Compare(b.Seq, a.Seq))
}

// searchChat returns up to limit messages of chat that match q and are older than
// before, newest first, in their current state for viewer. The index finds the
// candidates; each is checked against its current text, so a candidate whose words
// changed in a way the index could not see (a race, above) is never returned.
func (s *CassandraStore) searchChat(ctx context.Context, chat, viewer string, q searchQuery, before SearchCursor, limit int) ([]protocol.Message, error) {
	last, err := s.LastSeq(ctx, chat)
	if err != nil {
		return nil, err
	}
	stmt, args := q.cql()
	var out []protocol.Message
	seen := map[uint64]bool{}
	keep := func(msgs []protocol.Message) {
		for _, m := range msgs {
			h := searchHit{chat: chat, seq: int64(m.Seq), ts: m.Timestamp}
			if !seen[m.Seq] && q.matches(m.Content) && h.olderThan(before) {
				seen[m.Seq] = true
				out = append(out, m)
			}
		}
	}
	for part := int64(last) / searchPart; part >= 0 && len(out) < limit; part-- {
		iter := s.sess.Query(stmt, append([]any{chat, part}, args...)...).WithContext(ctx).Idempotent(true).Iter()
		var cands []searchHit
		var h searchHit
		var bucket, ts *int64
		for iter.Scan(&h.seq, &bucket, &ts) {
			if bucket == nil || seen[uint64(h.seq)] || slices.ContainsFunc(cands, func(c searchHit) bool { return c.seq == h.seq }) {
				continue // a row of a message already in hand (its text and its edits)
			}
			h.chat, h.bucket = chat, *bucket
			// The message's own row knows its time: skip what the cursor passed.
			// An edit's row does not; its message is read and then checked.
			if ts == nil || (searchHit{chat: chat, seq: h.seq, ts: *ts}).olderThan(before) {
				cands = append(cands, h)
			}
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("search %s part %d: %w", chat, part, err)
		}
		msgs, err := s.loadCurrent(ctx, chat, viewer, cands)
		if err != nil {
			return nil, err
		}
		keep(msgs)
	}
	// Targets of operations stored before them: their rows may hold old words.
	pend, err := s.pendingTargets(ctx, chat)
	if err != nil {
		return nil, err
	}
	var hs []searchHit
	for _, loc := range pend {
		if !seen[uint64(loc.seq)] {
			hs = append(hs, searchHit{chat: chat, seq: loc.seq, bucket: loc.bucket})
		}
	}
	msgs, err := s.loadCurrent(ctx, chat, viewer, hs)
	if err != nil {
		return nil, err
	}
	keep(msgs)
	slices.SortFunc(out, newestMessageFirst)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// pendingTargets returns where the chat's pending operation targets are stored.
func (s *CassandraStore) pendingTargets(ctx context.Context, chat string) ([]msgLoc, error) {
	var pending []string
	if err := s.sess.Query(cqlPending, chat).WithContext(ctx).Idempotent(true).Scan(&pending); err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return nil, fmt.Errorf("pending of %s: %w", chat, err)
	}
	if len(pending) == 0 {
		return nil, nil
	}
	var ops []*protocol.Message
	for _, id := range pending {
		ops = append(ops, &protocol.Message{ChatID: chat, RefID: id})
	}
	targets, err := s.resolveTargets(ctx, nil, ops)
	if err != nil {
		return nil, err
	}
	var out []msgLoc
	for _, locs := range targets {
		out = append(out, locs...)
	}
	return out, nil
}

// loadCurrent reads the messages at hits (one chat) in their current state for
// viewer; a deleted or missing message is left out.
func (s *CassandraStore) loadCurrent(ctx context.Context, chat, viewer string, hits []searchHit) ([]protocol.Message, error) {
	stored := make([]*storedMsg, len(hits))
	errs := make([]error, len(hits))
	sem := make(chan struct{}, stateReads)
	var wg sync.WaitGroup
	for i, h := range hits {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			stored[i], errs[i] = s.messageAt(ctx, chat, h.bucket, h.seq)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var page []storedMsg
	for _, m := range stored {
		if m != nil {
			page = append(page, *m)
		}
	}
	pending, err := s.pendingIDs(ctx, chat, page)
	if err != nil {
		return nil, err
	}
	msgs, err := s.currentState(ctx, chat, page, pending, viewer)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(msgs, func(m protocol.Message) bool { return m.Deleted || !protocol.Searchable(m.MessageType) }), nil
}

// pendingIDs returns the chat's pending targets among page (for currentState); a
// message without has_ops needs it only if an operation was stored before it.
func (s *CassandraStore) pendingIDs(ctx context.Context, chat string, page []storedMsg) ([]string, error) {
	if !slices.ContainsFunc(page, func(m storedMsg) bool { return !m.hasOps }) {
		return nil, nil
	}
	var pending []string
	if err := s.sess.Query(cqlPending, chat).WithContext(ctx).Idempotent(true).Scan(&pending); err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return nil, fmt.Errorf("pending of %s: %w", chat, err)
	}
	return pending, nil
}

// messageAt reads one stored message row, nil if there is none.
func (s *CassandraStore) messageAt(ctx context.Context, chat string, bucket, seq int64) (*storedMsg, error) {
	m := storedMsg{Message: protocol.Message{ChatID: chat}}
	var rseq int64
	var meta []byte
	err := s.sess.Query(cqlMessageAt, chat, bucket, seq).WithContext(ctx).Idempotent(true).
		Scan(&rseq, &m.MessageID, &m.SenderID, &m.Content, &m.MessageType, &m.Timestamp, &m.ReplyTo, &m.RefID, &meta, &m.hasOps, &m.ExpiresAt)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && m.Expired(time.Now().UnixMilli())) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%d: %w", chat, seq, err)
	}
	m.Seq = uint64(rseq)
	if len(meta) > 0 {
		m.Meta = meta
	}
	return &m, nil
}

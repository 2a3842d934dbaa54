package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The recipient reads as they were before their statements were prepared (main
// e02cc27: one statement of exactly len(chunk) placeholders per chunk, parsed on
// every call). TestSQLiteRecipientReadsSizes holds the prepared ones to their
// answers.

func parsedReadStates(ctx context.Context, s *SQLiteStore, chatID string, userIDs []string) (map[string]ReadState, error) {
	out := make(map[string]ReadState, len(userIDs))
	for chunk := range chunks(userIDs, sqliteInChunk) {
		rows, err := s.r.QueryContext(ctx, `SELECT user_id, delivered, read FROM read_state
			WHERE chat_id = ? AND user_id IN (`+placeholders(len(chunk))+`)`, append([]any{chatID}, anys(chunk)...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			rs := ReadState{ChatID: chatID}
			if err := rows.Scan(&rs.UserID, &rs.Delivered, &rs.Read); err != nil {
				rows.Close()
				return nil, err
			}
			out[rs.UserID] = rs
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parsedUnreadTotals(ctx context.Context, s *SQLiteStore, userIDs []string, exceptChatID string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(userIDs))
	for chunk := range chunks(userIDs, sqliteInChunk) {
		rows, err := s.r.QueryContext(ctx, `SELECT m.user_id, COALESCE(SUM(`+unreadSQL("c.last_seq", "m.chat_id", "COALESCE(r.read, 0)", "m.user_id")+`), 0)
			FROM members m JOIN chats c ON c.id = m.chat_id
			LEFT JOIN read_state r ON r.chat_id = m.chat_id AND r.user_id = m.user_id
			WHERE m.user_id IN (`+placeholders(len(chunk))+`) AND m.chat_id != ? GROUP BY m.user_id`, append(anys(chunk), exceptChatID)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var uid string
			var n int64
			if err := rows.Scan(&uid, &n); err != nil {
				rows.Close()
				return nil, err
			}
			if n > 0 {
				out[uid] = uint64(n)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parsedUsersDevices(ctx context.Context, s *SQLiteStore, userIDs []string) (map[string][]Device, error) {
	out := make(map[string][]Device)
	for chunk := range chunks(userIDs, sqliteInChunk) {
		rows, err := s.r.QueryContext(ctx, `SELECT user_id, device_id, platform, provider, token, updated_at FROM devices
			WHERE user_id IN (`+placeholders(len(chunk))+`) ORDER BY user_id, device_id`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var d Device
			var at int64
			if err := rows.Scan(&d.UserID, &d.DeviceID, &d.Platform, &d.Provider, &d.Token, &at); err != nil {
				rows.Close()
				return nil, err
			}
			d.UpdatedAt = time.UnixMilli(at).UTC()
			out[d.UserID] = append(out[d.UserID], d)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TestSQLiteRecipientReadsSizes: ReadStates, UnreadTotals and UsersDevices answer
// what the parsed statements answered for every batch size 1..500 (each prepared
// statement's size, the last user repeated to fill it) and across chunks, with
// users that have nothing stored and users named twice or more in the batch.
func TestSQLiteRecipientReadsSizes(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "recipients.db"))
	require.NoError(t, err)
	defer s.Close()
	stored := fillRecipients(t, s, 600)
	rnd := rand.New(rand.NewPCG(3, 4))
	// pool: stored users, unknown ones, and each first stored user once more.
	pool := append([]string(nil), stored...)
	for i := range 200 {
		pool = append(pool, fmt.Sprintf("nobody-%03d", i), stored[i])
	}
	batch := func(n int) []string {
		b := make([]string, n)
		for i := range b {
			b[i] = pool[rnd.IntN(len(pool))]
		}
		if n > 2 && n%3 == 0 {
			b[n-1] = b[0] // a repeated last user: the one the padding repeats
		}
		return b
	}
	sizes := make([]int, 0, 510)
	for n := 1; n <= 500; n++ {
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 501, 511, 512, 513, 999, 1000, 1001, 1600)
	chats := []string{"g0", "g1", "g2", "none"}
	checked := map[string]int{} // answers that were not empty, so the test compares something
	for _, n := range sizes {
		users := batch(n)
		chat := chats[n%len(chats)]
		wantRS, err := parsedReadStates(ctx, s, chat, users)
		require.NoError(t, err)
		gotRS, err := s.ReadStates(ctx, chat, users)
		require.NoError(t, err)
		require.Equal(t, wantRS, gotRS, "read states of %d users in %s", n, chat)
		checked["ReadStates"] += len(gotRS)

		except := chats[(n/len(chats))%len(chats)]
		wantUT, err := parsedUnreadTotals(ctx, s, users, except)
		require.NoError(t, err)
		gotUT, err := s.UnreadTotals(ctx, users, except)
		require.NoError(t, err)
		require.Equal(t, wantUT, gotUT, "unread totals of %d users except %s", n, except)
		checked["UnreadTotals"] += len(gotUT)

		wantUD, err := parsedUsersDevices(ctx, s, users)
		require.NoError(t, err)
		gotUD, err := s.UsersDevices(ctx, users)
		require.NoError(t, err)
		require.Equal(t, wantUD, gotUD, "devices of %d users", n)
		checked["UsersDevices"] += len(gotUD)
	}
	for _, read := range []string{"ReadStates", "UnreadTotals", "UsersDevices"} {
		require.Greater(t, checked[read], 10000, read)
	}
	empty, err := s.UsersDevices(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, empty)
}

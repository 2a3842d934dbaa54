package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/storetest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Environment of the Cassandra tests: NATTER_CASSANDRA_HOSTS names a node
// ("127.0.0.1:9042"); NATTER_REQUIRE_CASSANDRA=1 (CI) turns a missing node into a
// failure instead of a skip.
const (
	envCassandraHosts   = "NATTER_CASSANDRA_HOSTS"
	envRequireCassandra = "NATTER_REQUIRE_CASSANDRA"
)

// cassandraConfig returns the config of a node for tests, with a fresh keyspace
// name, or skips (fails under NATTER_REQUIRE_CASSANDRA=1) without one.
func cassandraConfig(t testing.TB, width time.Duration) store.CassandraConfig {
	t.Helper()
	hosts := os.Getenv(envCassandraHosts)
	if hosts == "" {
		msg := "no Cassandra node: set " + envCassandraHosts + " or run `go tool task test` which starts one from deploy/cassandra"
		if os.Getenv(envRequireCassandra) == "1" {
			t.Fatal(msg + " (" + envRequireCassandra + "=1 forbids skipping)")
		}
		t.Skip(msg)
	}
	if _, ok := t.(*testing.T); ok {
		// Registered first, so it runs after the test's other cleanups (which close
		// the store): the driver's goroutines must be gone by then.
		t.Cleanup(func() { goleak.VerifyNone(t) })
	}
	var cfg store.CassandraConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	// Generous timeouts: the suite must pass on a busy machine, where a node answers
	// slowly; what it proves is behaviour, not latency.
	require.NoError(t, fs.Parse([]string{"-cassandra.hosts", hosts, "-cassandra.bucket-width", width.String(),
		"-cassandra.timeout", "30s", "-cassandra.connect-timeout", "30s"}))
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg.Keyspace = "natter_test_" + hex.EncodeToString(b[:])
	return cfg
}

// openCassandra migrates a fresh keyspace, opens a store on it, and drops the
// keyspace when the test ends.
func openCassandra(t testing.TB, width time.Duration) (*store.CassandraStore, store.CassandraConfig) {
	t.Helper()
	cfg := cassandraConfig(t, width)
	return openCassandraWith(t, cfg), cfg
}

func openCassandraWith(t testing.TB, cfg store.CassandraConfig) *store.CassandraStore {
	t.Helper()
	ctx := context.Background()
	logger := zap.NewNop()
	if tt, ok := t.(*testing.T); ok && os.Getenv("NATTER_TEST_LOG") != "" {
		logger = zaptest.NewLogger(tt)
	}
	t.Cleanup(func() { dropKeyspace(t, cfg) })
	if err := store.MigrateCassandra(ctx, cfg, logger); err != nil {
		t.Fatalf("migrate a test keyspace on the Cassandra node at %s: %v\n"+
			"(is it running? deploy/cassandra/cassandra.sh start)", strings.Join(cfg.Hosts, ","), err)
	}
	s, err := store.OpenCassandra(ctx, cfg, logger)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func dropKeyspace(t testing.TB, cfg store.CassandraConfig) {
	cl := gocql.NewCluster(cfg.Hosts...)
	cl.Port = cfg.Port
	cl.Timeout, cl.ConnectTimeout = 60*time.Second, 30*time.Second
	sess, err := cl.CreateSession()
	if err != nil {
		t.Logf("drop keyspace %s: %v", cfg.Keyspace, err)
		return
	}
	defer sess.Close()
	if err := sess.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec(); err != nil {
		t.Logf("drop keyspace %s: %v", cfg.Keyspace, err)
	}
}

// TestCassandraConformance runs the shared suite with one-hour buckets, so the
// suite's day-spaced messages land in many buckets with empty ones between.
func TestCassandraConformance(t *testing.T) {
	cassandraConfig(t, time.Hour) // skip early, once
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openCassandra(t, time.Hour)
		return s
	})
}

func TestCassandraHistorySparseBuckets(t *testing.T) {
	ctx := context.Background()
	s, _ := openCassandra(t, time.Hour)
	rnd := mrand.New(mrand.NewPCG(1, 2))
	// 700 messages (three seq blocks) with gaps of 0 to 80 hours between them, so
	// most one-hour buckets are empty; some timestamps step backwards, as a clock
	// might after a sequencer failover, into the buckets of earlier messages, so
	// the seq ranges of buckets overlap.
	const n = 700
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []protocol.Message
	for seq := uint64(1); seq <= n; seq++ {
		switch r := rnd.IntN(10); {
		case r < 4: // same bucket
			at = at.Add(time.Minute)
		case r < 9:
			at = at.Add(time.Duration(rnd.IntN(80)+1) * time.Hour)
		default: // back into the bucket of one of the last 20 messages
			if len(all) > 0 {
				at = time.UnixMilli(all[len(all)-1-rnd.IntN(min(len(all), 20))].Timestamp)
			}
		}
		all = append(all, protocol.Message{ChatID: "sparse", Seq: seq, MessageID: fmt.Sprintf("id%d", seq),
			SenderID: "alice", Content: fmt.Sprintf("message %d", seq), MessageType: protocol.TypeText, Timestamp: at.UnixMilli()})
	}
	// Appended out of order, in uneven batches, one of them twice.
	shuffled := append([]protocol.Message(nil), all...)
	rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i := 0; i < n; {
		j := min(n, i+1+rnd.IntN(120))
		require.NoError(t, s.AppendMessages(ctx, shuffled[i:j]))
		if i == 0 {
			require.NoError(t, s.AppendMessages(ctx, shuffled[i:j]))
		}
		i = j
	}
	last, err := s.LastSeq(ctx, "sparse")
	require.NoError(t, err)
	require.EqualValues(t, n, last)

	for _, limit := range []int{1, 7, 50, 500} {
		t.Run(fmt.Sprintf("limit%d", limit), func(t *testing.T) {
			// Backward from the newest to the start.
			var got []protocol.Message
			before := uint64(0)
			for {
				page, err := s.History(ctx, "sparse", store.HistoryQuery{Before: before, Limit: limit})
				require.NoError(t, err)
				if len(page) == 0 {
					break
				}
				require.LessOrEqual(t, len(page), limit)
				got = append(got, page...)
				before = page[len(page)-1].Seq
			}
			require.Equal(t, rangeSeqs(n, 1), seqsOf(got), "backward pages")
			for i, m := range got {
				require.Equal(t, all[n-1-i], m, "backward page item %d", i)
			}
			// Forward from the start to the newest.
			got = got[:0]
			after := uint64(0)
			for {
				page, err := s.History(ctx, "sparse", store.HistoryQuery{Dir: store.Forward, After: after, Limit: limit})
				require.NoError(t, err)
				if len(page) == 0 {
					break
				}
				got = append(got, page...)
				after = page[len(page)-1].Seq
			}
			require.Equal(t, rangeSeqs(1, n), seqsOf(got), "forward pages")
			for i, m := range got {
				require.Equal(t, all[i], m, "forward page item %d", i)
			}
		})
	}
	// Cursors anywhere, including past both ends.
	for range 50 {
		c := uint64(rnd.IntN(n + 3))
		page, err := s.History(ctx, "sparse", store.HistoryQuery{Before: c, Limit: 13})
		require.NoError(t, err)
		var want []uint64
		top := uint64(n) // Before 0: from the newest
		if c > 0 {
			top = min(c-1, n)
		}
		for q := top; q >= 1 && len(want) < 13; q-- {
			want = append(want, q)
		}
		require.Equal(t, want, seqsOf(page), "before %d", c)
		page, err = s.History(ctx, "sparse", store.HistoryQuery{Dir: store.Forward, After: c, Limit: 13})
		require.NoError(t, err)
		want = nil
		for q := c + 1; q <= n && len(want) < 13; q++ {
			want = append(want, q)
		}
		require.Equal(t, want, seqsOf(page), "after %d", c)
	}
}

func rangeSeqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; ; {
		out = append(out, s)
		if s == to {
			return out
		}
		if from < to {
			s++
		} else {
			s--
		}
	}
}

// TestCassandraOperationsMatchSQLite stores one random chat, with edits, deletes
// and reactions, in both backends: in SQLite in order, in Cassandra shuffled and
// from four concurrent writers (persisters racing, operations often stored before
// their targets). Every message must read back in the same current state.
func TestCassandraOperationsMatchSQLite(t *testing.T) {
	ctx := context.Background()
	cass, _ := openCassandra(t, time.Hour)
	lite, err := store.OpenSQLite(ctx, t.TempDir()+"/natter.db")
	require.NoError(t, err)
	t.Cleanup(func() { lite.Close() })

	rnd := mrand.New(mrand.NewPCG(3, 4))
	users := []string{"u1", "u2", "u3", "u4"}
	emojis := []string{"👍", "❤️", "🎉"}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var all []protocol.Message
	var texts []protocol.Message // messages operations may reference
	for seq := uint64(1); seq <= 400; seq++ {
		at = at.Add(time.Duration(rnd.IntN(90)) * time.Minute)
		m := protocol.Message{ChatID: "ops", Seq: seq, MessageID: fmt.Sprintf("id%d", seq),
			SenderID: users[rnd.IntN(len(users))], Timestamp: at.UnixMilli(), MessageType: protocol.TypeText,
			Content: fmt.Sprintf("text %d", seq)}
		if len(texts) > 0 && rnd.IntN(10) < 6 {
			target := texts[len(texts)-1-rnd.IntN(min(len(texts), 15))]
			m.RefID, m.Content = target.MessageID, ""
			switch r := rnd.IntN(10); {
			case r < 3:
				m.MessageType, m.Content = protocol.TypeEdit, fmt.Sprintf("edit %d", seq)
				if rnd.IntN(3) > 0 {
					m.SenderID = target.SenderID // mostly the author; sometimes not
				}
			case r < 4:
				m.MessageType = protocol.TypeDelete
			default:
				m.MessageType = protocol.TypeReact
				m.Meta, _ = json.Marshal(protocol.ReactionEvent{Emoji: emojis[rnd.IntN(len(emojis))], Remove: rnd.IntN(3) == 0})
			}
		} else {
			texts = append(texts, m)
		}
		all = append(all, m)
	}
	require.NoError(t, lite.AppendMessages(ctx, all))

	shuffled := append([]protocol.Message(nil), all...)
	rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var batches [][]protocol.Message
	for i := 0; i < len(shuffled); {
		j := min(len(shuffled), i+1+rnd.IntN(30))
		batches = append(batches, shuffled[i:j])
		i = j
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(batches); i += 4 {
				if err := cass.AppendMessages(ctx, batches[i]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	for _, viewer := range append(users, "") {
		q := store.HistoryQuery{Dir: store.Forward, Limit: store.MaxPage, Viewer: viewer}
		want, err := lite.History(ctx, "ops", q)
		require.NoError(t, err)
		got, err := cass.History(ctx, "ops", q)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for i := range want {
			require.Equal(t, want[i], got[i], "viewer %q, seq %d", viewer, want[i].Seq)
		}
	}
	var deleted, edited, reacted int
	h, err := cass.History(ctx, "ops", store.HistoryQuery{Dir: store.Forward, Limit: store.MaxPage})
	require.NoError(t, err)
	for _, m := range h {
		deleted += btoi(m.Deleted)
		edited += btoi(m.Edited)
		reacted += btoi(len(m.Reactions) > 0)
	}
	require.True(t, deleted > 5 && edited > 5 && reacted > 5, "the workload exercises every operation: %d deleted, %d edited, %d with reactions",
		deleted, edited, reacted)

	// Search finds the same messages in the same order on both backends, although
	// Cassandra got the operations shuffled and concurrently (edits before their
	// targets included: the pending path of cassandra_search.go).
	chat := store.Chat{ID: "ops", Kind: store.KindGroup, CreatedBy: "u1", CreatedAt: at}
	var members []store.Member
	for _, u := range users {
		members = append(members, store.Member{ChatID: "ops", UserID: u, Role: store.RoleMember, JoinedAt: at})
	}
	for _, st := range []store.Store{lite, cass} {
		_, _, err := st.CreateChat(ctx, chat, members)
		require.NoError(t, err)
	}
	searchKeys := func(st store.Searcher, q store.SearchQuery, viewer string) []string {
		t.Helper()
		var out []string
		for range 50 {
			page, err := st.Search(ctx, viewer, q)
			require.NoError(t, err)

			for _, m := range page {
				out = append(out, fmt.Sprintf("%d:%s:%t:%d", m.Seq, m.Content, m.Edited, len(m.Reactions)))
			}
			if len(page) < q.Limit {
				return out
			}
			last := page[len(page)-1]
			q.Before = store.SearchCursor{Timestamp: last.Timestamp, ChatID: last.ChatID, Seq: last.Seq}
		}
		t.Fatalf("search %q did not end", q.Text)
		return nil
	}
	var hits int
	for _, text := range []string{"text", "edit", "text 1", "edit 3", "TEXT 2", "ed", "t", "text 39", "nothing"} {
		for _, limit := range []int{7, store.MaxSearch} {
			q := store.SearchQuery{Text: text, Limit: limit}
			want := searchKeys(lite, q, "u2")
			require.Equal(t, want, searchKeys(cass, q, "u2"), "search %q, pages of %d", text, limit)
			hits += len(want)
		}
	}
	require.Greater(t, hits, 100, "the searches find something")
	require.Empty(t, searchKeys(cass, store.SearchQuery{Text: "text", Limit: 10}, "stranger"), "only members")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func seqsOf(msgs []protocol.Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

func TestCassandraReadStateConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _ := openCassandra(t, time.Hour)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := uint64(1); i <= 40; i++ {
				v := i*8 + uint64(w)
				rs, err := s.SetReadState(ctx, "c", "u", v+1, v)
				if !(err == nil && rs.Read >= v && rs.Delivered >= v+1 && rs.Delivered >= rs.Read) {
					t.Errorf("SetReadState(%d, %d) = %+v, %v", v+1, v, rs, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rs, err := s.GetReadState(ctx, "c", "u")
	require.NoError(t, err)
	require.Equal(t, store.ReadState{ChatID: "c", UserID: "u", Delivered: 40*8 + 7 + 1, Read: 40*8 + 7}, rs)
}

// TestCassandraMembersBeforeChat covers membership written before its chat exists
// (the chat's partition then has member rows but no static metadata).
func TestCassandraMembersBeforeChat(t *testing.T) {
	ctx := context.Background()
	s, _ := openCassandra(t, time.Hour)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "late", UserID: "bob", Role: store.RoleMember, JoinedAt: at}))
	_, err := s.GetChat(ctx, "late")
	require.ErrorIs(t, err, store.ErrNotFound)
	chats, err := s.UserChats(ctx, "bob", 0, 0)
	require.NoError(t, err)
	require.Empty(t, chats, "no chat yet")

	// An empty kind is still a chat.
	c := store.Chat{ID: "late", Kind: "", Name: "late", CreatedBy: "alice", CreatedAt: at}
	_, created, err := s.CreateChat(ctx, c, []store.Member{{UserID: "alice", Role: store.RoleAdmin, JoinedAt: at}})
	require.NoError(t, err)
	require.True(t, created, "member rows alone are not a chat")
	got, err := s.GetChat(ctx, "late")
	require.NoError(t, err)
	require.Equal(t, c, got)
	chats, err = s.UserChats(ctx, "bob", 0, 0)
	require.NoError(t, err)
	require.Len(t, chats, 1, "bob's early row is completed from the chat")
	require.Equal(t, c, chats[0].Chat)
	ms, err := s.Members(ctx, "late")
	require.NoError(t, err)
	require.Len(t, ms, 2)

	// The same create again changes nothing and reports the stored chat.
	got, created, err = s.CreateChat(ctx, c, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, c, got)
	ms, err = s.Members(ctx, "late")
	require.NoError(t, err)
	require.Len(t, ms, 2)
}

func TestCassandraMigrateAndOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, cfg := openCassandra(t, time.Hour)
	require.NoError(t, store.MigrateCassandra(ctx, cfg, zap.NewNop()), "migrating again is a no-op")

	missing := cfg
	missing.Keyspace = cfg.Keyspace + "_missing"
	_, err := store.OpenCassandra(ctx, missing, zap.NewNop())
	require.ErrorContains(t, err, "keyspace "+missing.Keyspace+" does not exist: run `natter migrate`")

	// A keyspace someone created by hand, without Natter's tables.
	bare := cfg
	bare.Keyspace = cfg.Keyspace + "_bare"
	t.Cleanup(func() { dropKeyspace(t, bare) })
	acl := gocql.NewCluster(cfg.Hosts...)
	acl.Timeout, acl.ConnectTimeout = 60*time.Second, 30*time.Second
	admin, err := acl.CreateSession()
	require.NoError(t, err)
	err = admin.Query("CREATE KEYSPACE " + bare.Keyspace +
		" WITH replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 1}").Exec()
	admin.Close()
	require.NoError(t, err)
	_, err = store.OpenCassandra(ctx, bare, zap.NewNop())
	require.ErrorContains(t, err, "has no Natter schema (no schema_migrations table): run `natter migrate`")

	down := cfg
	down.Hosts = []string{"127.0.0.1:1"}
	down.ConnectTimeout = time.Second
	_, err = store.OpenCassandra(ctx, down, zap.NewNop())
	require.ErrorContains(t, err, "is Cassandra running?")
}

func TestCassandraConfig(t *testing.T) {
	var cfg store.CassandraConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, cfg.Validate(), "the flag defaults are valid")
	require.Equal(t, []string{"127.0.0.1"}, cfg.Hosts)
	require.Equal(t, 9042, cfg.Port)
	require.Equal(t, "natter", cfg.Keyspace)
	require.Equal(t, "LOCAL_QUORUM", cfg.Consistency)
	require.Equal(t, 24*time.Hour, cfg.BucketWidth)
	require.Empty(t, cfg.Password)

	require.NoError(t, fs.Parse([]string{"-cassandra.hosts", "10.0.0.1:9142, 10.0.0.2", "-cassandra.replication-factor", "3"}))
	require.Equal(t, []string{"10.0.0.1:9142", "10.0.0.2"}, cfg.Hosts)
	require.NoError(t, cfg.Validate())

	bad := cfg
	bad.Hosts = nil
	bad.Keyspace = "Natter-prod"
	bad.Consistency = "MOST"
	bad.BucketWidth = time.Second
	bad.Username = "natter"
	bad.WriteConcurrency = 0
	err := bad.Validate()
	require.Error(t, err)
	for _, want := range []string{"cassandra.hosts", "cassandra.keyspace", "cassandra.consistency",
		"cassandra.bucket-width", "cassandra.password", "cassandra.write-concurrency"} {
		require.ErrorContains(t, err, want)
	}
}

// TestCassandraSchemaFile keeps the operators' copy of the schema current.
func TestCassandraSchemaFile(t *testing.T) {
	const path = "../../deploy/cassandra/schema.cql"
	want := store.CassandraSchema("natter", 3)
	if os.Getenv("NATTER_UPDATE_SCHEMA") == "1" {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "%s is stale: regenerate it with NATTER_UPDATE_SCHEMA=1 go test ./pkg/store -run TestCassandraSchemaFile", path)
}

// BenchmarkCassandraAppend measures AppendMessages as the persister uses it: one
// caller, batches of 500 messages (its default batch) with 100-byte contents from 7
// senders, spread over 1, 50 or 500 chats, with the default write concurrency (64)
// and a lower and a higher one.
func BenchmarkCassandraAppend(b *testing.B) {
	for _, bc := range []struct {
		chats, concurrency int
	}{{50, 64}, {1, 64}, {500, 64}, {50, 16}, {50, 256}} {
		b.Run(fmt.Sprintf("chats=%d/concurrency=%d", bc.chats, bc.concurrency), func(b *testing.B) {
			cfg := cassandraConfig(b, 24*time.Hour)
			cfg.WriteConcurrency = bc.concurrency
			s := openCassandraWith(b, cfg)
			ctx := context.Background()
			const batch = 500
			content := strings.Repeat("x", 100)
			seqs := make([]uint64, bc.chats)
			now := time.Now().UnixMilli()
			msgs := make([]protocol.Message, batch)
			total := 0
			b.ResetTimer()
			for b.Loop() {
				for i := range msgs {
					c := (total + i) % bc.chats
					seqs[c]++
					msgs[i] = protocol.Message{ChatID: fmt.Sprintf("chat%d", c), Seq: seqs[c],
						MessageID: fmt.Sprintf("m%d", total+i), SenderID: fmt.Sprintf("u%d", (total+i)%7),
						Content: content, MessageType: protocol.TypeText, Timestamp: now + int64(total+i)}
				}
				if err := s.AppendMessages(ctx, msgs); err != nil {
					b.Fatal(err)
				}
				total += batch
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkCassandraHistoryPage1M measures history page latency on a
// chat with 1,000,000 messages (NATTER_BENCH_HISTORY_MESSAGES overrides the count)
// of 100-byte content, 10 s apart, so with one-hour buckets they span about 2,800
// buckets. It loads them with parallel AppendMessages callers in batches of 500
// (NATTER_BENCH_HISTORY_LOAD_MAX, a duration, stops the load early: the benchmark
// then pages over the messages loaded, a prefix of the chat), then reads b.N pages
// of 50 at uniformly random cursors, alternating backward and forward, and reports
// each direction's p50 and p99 in ms. Run it against a node of its own, e.g.
//
//	NATTER_CASSANDRA_HOSTS=127.0.0.1:9442 go test ./pkg/store/ -run XXX \
//	  -bench CassandraHistoryPage1M -benchtime 2000x -timeout 30m
func BenchmarkCassandraHistoryPage1M(b *testing.B) {
	if os.Getenv(envCassandraHosts) == "" {
		b.Skip("BenchmarkCassandraHistoryPage1M needs a Cassandra node: set " + envCassandraHosts +
			" (e.g. 127.0.0.1:9042 after deploy/cassandra/cassandra.sh start)")
	}
	total := 1_000_000
	if v := os.Getenv("NATTER_BENCH_HISTORY_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("NATTER_BENCH_HISTORY_MESSAGES=%q: want a count of at least 1000", v)
		}
		total = n
	}
	var loadMax time.Duration
	if v := os.Getenv("NATTER_BENCH_HISTORY_LOAD_MAX"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("NATTER_BENCH_HISTORY_LOAD_MAX=%q: %v", v, err)
		}
		loadMax = d
	}
	const (
		batch   = 500
		callers = 4
		step    = 10 * time.Second
		limit   = 50
		chatID  = "bigchat"
	)
	s, _ := openCassandra(b, time.Hour)
	ctx := context.Background()

	// Load: callers claim batches in order, so when the load stops early every
	// batch below the last claimed one is stored and the chat is a prefix 1..loaded.
	content := strings.Repeat("x", 100)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	batches := (total + batch - 1) / batch
	var next, done atomic.Int64
	var stop atomic.Bool
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			msgs := make([]protocol.Message, 0, batch)
			for !stop.Load() {
				k := int(next.Add(1)) - 1
				if k >= batches {
					return
				}
				msgs = msgs[:0]
				for seq := k*batch + 1; seq <= min((k+1)*batch, total); seq++ {
					msgs = append(msgs, protocol.Message{ChatID: chatID, Seq: uint64(seq),
						MessageID: "m" + strconv.Itoa(seq), SenderID: "u" + strconv.Itoa(seq%7),
						Content: content, MessageType: protocol.TypeText,
						Timestamp: base + int64(seq)*step.Milliseconds()})
				}
				if err := s.AppendMessages(ctx, msgs); err != nil {
					stop.Store(true)
					errs <- fmt.Errorf("append batch %d: %w", k, err)
					return
				}
				n := done.Add(int64(len(msgs)))
				if n/100_000 != (n-int64(len(msgs)))/100_000 {
					el := time.Since(start)
					fmt.Fprintf(os.Stderr, "history bench: %d messages loaded in %s (%.0f msgs/s)\n",
						n, el.Round(time.Millisecond), float64(n)/el.Seconds())
				}
				if loadMax > 0 && time.Since(start) > loadMax {
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	loaded := int(done.Load())
	loadTime := time.Since(start)
	last, err := s.LastSeq(ctx, chatID)
	require.NoError(b, err)
	if int(last) != loaded {
		b.Fatalf("loaded %d messages but LastSeq is %d", loaded, last)
	}
	buckets := (int64(loaded)*step.Milliseconds())/time.Hour.Milliseconds() + 1
	fmt.Fprintf(os.Stderr, "history bench: loaded %d of %d messages (~%d one-hour buckets) in %s: %.0f msgs/s\n",
		loaded, total, buckets, loadTime.Round(time.Millisecond), float64(loaded)/loadTime.Seconds())

	// Measure: alternate backward and forward pages at random cursors that leave a
	// full page on their side.
	rng := mrand.New(mrand.NewPCG(1, 2))
	var back, fwd []time.Duration
	for i := 0; b.Loop(); i++ {
		var q store.HistoryQuery
		if i%2 == 0 {
			q = store.HistoryQuery{Dir: store.Backward, Before: uint64(limit + 1 + rng.IntN(loaded-limit+1)), Limit: limit}
		} else {
			q = store.HistoryQuery{Dir: store.Forward, After: uint64(rng.IntN(loaded - limit + 1)), Limit: limit}
		}
		t0 := time.Now()
		page, err := s.History(ctx, chatID, q)
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(page) != limit {
			b.Fatalf("history %+v: got %d messages, want %d", q, len(page), limit)
		}
		if q.Dir == store.Backward {
			back = append(back, d)
		} else {
			fwd = append(fwd, d)
		}
	}
	pct := func(ds []time.Duration, p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		i := min(int(p*float64(len(ds))), len(ds)-1)
		return float64(ds[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(loaded), "msgs")
	b.ReportMetric(float64(loaded)/loadTime.Seconds(), "load-msgs/s")
	b.ReportMetric(pct(back, 0.50), "back-p50-ms")
	b.ReportMetric(pct(back, 0.99), "back-p99-ms")
	b.ReportMetric(pct(fwd, 0.50), "fwd-p50-ms")
	b.ReportMetric(pct(fwd, 0.99), "fwd-p99-ms")
}

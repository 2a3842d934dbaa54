package persister_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// logEnv is a NATS server with Natter's streams (NATTER_LOG keeping stored
// messages for logAge) and a SQLite store at dbPath.
type logEnv struct {
	js     jetstream.JetStream
	subj   subjects.Subjects
	st     *store.SQLiteStore
	dbPath string
	ret    persister.Retention
}

func newLogEnv(t *testing.T, logAge time.Duration) *logEnv {
	t.Helper()
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ncfg := natsutil.DefaultConfig()
	ncfg.LogMaxAge = logAge
	require.NoError(t, natsutil.EnsureStreams(context.Background(), js, &ncfg))
	dbPath := filepath.Join(t.TempDir(), "p.db")
	st, err := store.OpenSQLite(context.Background(), dbPath)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return &logEnv{js: js, subj: ncfg.Subjects(), st: st, dbPath: dbPath,
		ret: persister.Retention{MaxAge: ncfg.LogMaxAge, MaxBytes: ncfg.LogMaxBytes, DedupWindow: ncfg.DedupWindow}}
}

// publish appends chat's messages from..to to NATTER_LOG, as the sequencer does.
func (e *logEnv) publish(t *testing.T, chat string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		m := protocol.Message{ChatID: chat, Seq: uint64(i), MessageID: fmt.Sprintf("%s-%d", chat, i), SenderID: "u",
			Content: "x", MessageType: protocol.TypeText, Timestamp: time.Now().UnixMilli()}
		_, err := e.js.Publish(context.Background(), e.subj.Log(chat), protocol.EncodeMessageFrame(&m))
		require.NoError(t, err)
	}
}

// run starts a persister until the test ends (or stop is called).
func (e *logEnv) run(t *testing.T, log *zap.Logger) (p *persister.Persister, stop func()) {
	t.Helper()
	return e.runWith(t, persister.Config{Batch: 100, MaxWait: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, AckWait: time.Second}, log)
}

// runWith is run with the persister's configuration cfg.
func (e *logEnv) runWith(t *testing.T, cfg persister.Config, log *zap.Logger) (p *persister.Persister, stop func()) {
	t.Helper()
	p, err := persister.New(cfg, persister.Deps{JS: e.js, Store: e.st, Subjects: e.subj, Retention: e.ret}, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return p, stop
}

func (e *logEnv) lastSeq(chat string) uint64 {
	n, err := e.st.LastSeq(context.Background(), chat)
	if err != nil {
		return 0
	}
	return n
}

// logMsgs returns how many messages NATTER_LOG holds on subj (all if empty).
func (e *logEnv) logMsgs(t *testing.T, subj string) uint64 {
	t.Helper()
	st, err := e.js.Stream(context.Background(), subjects.LogStream)
	require.NoError(t, err)
	if subj == "" {
		return st.CachedInfo().State.Msgs
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subj))
	require.NoError(t, err)
	return info.State.Subjects[subj]
}

func shortTrim(t *testing.T) {
	old := persister.TrimInterval
	persister.TrimInterval = 50 * time.Millisecond
	t.Cleanup(func() { persister.TrimInterval = old })
}

// TestRefusedChatIsParkedAndTheOthersGoOn: the store refuses every message of one
// chat (a real SQLite error, raised by a trigger as a corrupt page would be) while
// it answers. The persister parks that chat with an error log and the metric,
// keeps persisting the other chat, old or new, keeps the refused messages in
// NATTER_LOG although they are older than the log age (only what is stored is
// trimmed), and resumes the chat once the store takes it again.
func TestRefusedChatIsParkedAndTheOthersGoOn(t *testing.T) {
	shortTrim(t)
	e := newLogEnv(t, 300*time.Millisecond)
	db, err := sql.Open("sqlite", "file:"+e.dbPath+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TRIGGER refuse_bad BEFORE INSERT ON messages WHEN NEW.chat_id = 'bad'
		BEGIN SELECT RAISE(ABORT, 'database disk image is malformed'); END`)
	require.NoError(t, err)

	for i := 1; i <= 5; i++ { // one batch mixing both chats
		e.publish(t, "bad", i, i)
		e.publish(t, "good", i, i)
	}
	core, logs := observer.New(zap.InfoLevel)
	p, _ := e.run(t, zap.New(core))

	require.Eventually(t, func() bool { return e.lastSeq("good") == 5 }, 10*time.Second, 20*time.Millisecond,
		"the healthy chat is persisted although its batch held the refused chat")
	require.Equal(t, 1, p.ParkedChats())
	require.Zero(t, e.lastSeq("bad"))
	parkedLogs := logs.FilterMessageSnippet("chat parked").FilterField(zap.String("chat_id", "bad"))
	require.Equal(t, 1, parkedLogs.Len(), "one error log when the chat is parked")
	require.Equal(t, zap.ErrorLevel, parkedLogs.All()[0].Level)

	e.publish(t, "good", 6, 10)
	e.publish(t, "bad", 6, 6)
	require.Eventually(t, func() bool { return e.lastSeq("good") == 10 }, 10*time.Second, 20*time.Millisecond,
		"new messages of the healthy chat are persisted while the other is parked")

	// Well past the log age, the refused chat's messages are all still in the log.
	require.Never(t, func() bool { return e.logMsgs(t, e.subj.Log("bad")) != 6 }, time.Second, 50*time.Millisecond,
		"an unstored message left NATTER_LOG")
	require.Equal(t, 1, p.ParkedChats())

	_, err = db.Exec(`DROP TRIGGER refuse_bad`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.lastSeq("bad") == 6 }, 10*time.Second, 20*time.Millisecond,
		"the parked chat resumes once the store takes it")
	require.Eventually(t, func() bool { return p.ParkedChats() == 0 }, 5*time.Second, 10*time.Millisecond) // unparked just after the commit
	require.Equal(t, 1, logs.FilterMessageSnippet("parked chat resumed").Len())
	page, err := e.st.History(context.Background(), "bad", store.HistoryQuery{Dir: store.Forward, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page, 6)
	require.Eventually(t, func() bool { return e.logMsgs(t, "") == 0 }, 10*time.Second, 20*time.Millisecond,
		"once stored and older than the log age, the log is trimmed")
}

// TestStoppedPersisterLosesNothing: with a log age far shorter than the outage, a
// stopped persister finds every message still in NATTER_LOG when it comes back,
// stores them all, and only then are they trimmed.
func TestStoppedPersisterLosesNothing(t *testing.T) {
	shortTrim(t)
	e := newLogEnv(t, 200*time.Millisecond)
	_, stop := e.run(t, zap.NewNop())
	e.publish(t, "c", 1, 10)
	require.Eventually(t, func() bool { return e.lastSeq("c") == 10 }, 10*time.Second, 20*time.Millisecond)
	stop()

	e.publish(t, "c", 11, 40)
	require.Never(t, func() bool { return e.logMsgs(t, e.subj.Log("c")) < 30 }, time.Second, 50*time.Millisecond,
		"unstored messages aged out of NATTER_LOG while the persister was stopped")

	e.run(t, zap.NewNop())
	// The stopped instance's last pull may have taken a message or two (its NATS
	// connection, shared here, stays open): they come back after the ack wait.
	require.Eventually(t, func() bool {
		page, err := e.st.History(context.Background(), "c", store.HistoryQuery{Dir: store.Forward, Limit: 100})
		return err == nil && len(page) == 40
	}, 15*time.Second, 20*time.Millisecond, "every message is stored")
	require.Eventually(t, func() bool { return e.logMsgs(t, "") == 0 }, 10*time.Second, 20*time.Millisecond,
		"stored messages older than the log age are trimmed")
}

// TestCurrentLag: the lag counts what is not stored and dates the oldest of it.
func TestCurrentLag(t *testing.T) {
	e := newLogEnv(t, time.Hour)
	_, err := persister.CurrentLag(context.Background(), e.js)
	require.ErrorIs(t, err, persister.ErrNoConsumer)
	_, stop := e.run(t, zap.NewNop())
	e.publish(t, "c", 1, 3)
	require.Eventually(t, func() bool { return e.lastSeq("c") == 3 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		lag, err := persister.CurrentLag(context.Background(), e.js)
		return err == nil && lag.Messages == 0 && lag.Oldest.IsZero()
	}, 5*time.Second, 20*time.Millisecond)
	stop()
	before := time.Now()
	e.publish(t, "c", 4, 8)
	var lag persister.Lag
	require.Eventually(t, func() bool { // the consumer's counts follow the stream asynchronously
		lag, err = persister.CurrentLag(context.Background(), e.js)
		return err == nil && lag.Messages == 5
	}, 5*time.Second, 20*time.Millisecond)
	require.WithinDuration(t, before, lag.Oldest, time.Second)
}

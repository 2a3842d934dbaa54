package e2e

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	_ "modernc.org/sqlite"
)

// TestReadyzStoreWrites: /readyz proves the store takes writes, not only that it
// answers: while another process holds SQLite's write lock, reads (and a ping)
// still work but every write waits, and /readyz says so; it is ready again once
// the lock is released.
func TestReadyzStoreWrites(t *testing.T) {
	cfg := testutil.Config(t)
	n := testutil.StartNatter(t, cfg)
	require.Eventually(t, func() bool { s, _ := readyz(t, n); return s == http.StatusOK }, 10*time.Second, 50*time.Millisecond)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, "natter.db")+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS other_process_lock (x INTEGER)`) // takes the write lock
	require.NoError(t, err)

	require.NoError(t, n.Store.Ping(ctx), "reads still work")
	status, reasons := readyz(t, n)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, reasons, "store", reasons)
	require.NotContains(t, reasons, "jetstream", reasons)

	require.NoError(t, tx.Rollback())
	require.Eventually(t, func() bool { s, _ := readyz(t, n); return s == http.StatusOK }, 15*time.Second, 50*time.Millisecond)
}

// TestReadyzJetStreamDisabled: with JetStream disabled on an external server the
// connection is still up, but /readyz is unready and says JetStream is disabled.
func TestReadyzJetStreamDisabled(t *testing.T) {
	ns := natstest.Server(t)
	cfg := testutil.Config(t)
	cfg.NATS.URL = ns.ClientURL()
	n := testutil.StartNatter(t, cfg)
	require.Eventually(t, func() bool { s, _ := readyz(t, n); return s == http.StatusOK }, 10*time.Second, 50*time.Millisecond)

	require.NoError(t, ns.DisableJetStream())
	var reasons map[string]string
	require.Eventually(t, func() bool {
		var s int
		s, reasons = readyz(t, n)
		return s == http.StatusServiceUnavailable
	}, 10*time.Second, 50*time.Millisecond)
	t.Logf("unready: %v", reasons)
	require.Contains(t, reasons["jetstream"], "disabled on the server", reasons)
	require.NotContains(t, reasons, "nats", "the connection itself is up")
}

// TestRESTStoreErrorLogged: a REST call the store cannot answer is a 503 for the
// client and one log line with the cause for the operator.
func TestRESTStoreErrorLogged(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	cfg := testutil.Config(t)
	n := testutil.StartNatterLog(t, cfg, zap.New(core))
	token := n.Token(t, "alice")
	chat := n.CreateChat(t, "alice", "group", "g", "bob")

	require.NoError(t, n.Store.Close()) // every read and write fails from now on
	status, body := n.Do(t, "GET", "/api/v1/chats/"+chat, token, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, string(body))
	require.Contains(t, string(body), `"unavailable"`)
	var lines []string
	for _, e := range logs.FilterMessage("request failed").All() {
		lines = append(lines, e.ContextMap()["error"].(string))
	}
	require.Len(t, lines, 1, "logged once: %v", lines)
	require.True(t, strings.Contains(lines[0], "closed"), "the cause is logged: %q", lines[0])
	status, reasons := readyz(t, n)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, reasons["store"], "closed", reasons)
}

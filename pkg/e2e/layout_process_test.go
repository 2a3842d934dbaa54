package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// The recipes of docs/operations.md, "Layouts": each role in its own OS process,
// on one NATS server, with the store shared the way the recipe says. Each test
// sends through one gateway process, checks delivery to the other member and that
// the persister process wrote every message into the shared store, which a process
// of its own (this test) then reads.

// layout starts one process per role with the given store flags (nil: the role
// gets no store flags at all) and returns the gateway process.
func layout(t *testing.T, storeArgs func(role string) []string) (gw *proc, pc *procCluster) {
	t.Helper()
	dir := t.TempDir()
	ns := natstest.Server(t) // the machine's (or cluster's) nats-server
	secret := []byte(strings.Repeat("k", 16) + "natter-layout-test")
	secretFile := filepath.Join(dir, "jwt.secret")
	require.NoError(t, os.WriteFile(secretFile, secret, 0o600))
	pc = &procCluster{t: t, secret: secret}
	var procs []*proc
	for _, role := range []string{"sequencer", "gateway", "persister", "notifier", "presence"} {
		p := newProc(t, dir, role, role == "gateway", append([]string{"serve", "--roles", role, "--nats.url", ns.ClientURL(),
			"--data-dir", filepath.Join(dir, role), "--auth.dev=false", "--auth.secret-file", secretFile, "--gateway.consent-direct-adds"}, storeArgs(role)...)...)
		if role == "gateway" {
			gw = p
		}
		procs = append(procs, p)
	}
	t.Cleanup(func() { stopAll(t, procs) })
	procs[0].start() // creates the streams
	var wg sync.WaitGroup
	for _, p := range procs[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); p.start() }()
	}
	wg.Wait()
	require.False(t, t.Failed())
	pc.gws = []*proc{gw}
	return gw, pc
}

// chatFlows creates a chat through the gateway process, sends n messages as alice,
// checks bob receives them, and returns the chat ID.
func chatFlows(t *testing.T, gw *proc, pc *procCluster, n int) string {
	t.Helper()
	out := restPost(t, gw.gatewayAddr(), "/api/v1/chats", pc.token("alice"), map[string]any{"type": "direct", "members": []string{"bob"}})
	var chat struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(out, &chat))
	dial := func(user string) *client.Conn {
		c, err := client.Dial(ctxT(t, 10*time.Second), "ws://"+gw.gatewayAddr()+"/ws", pc.token(user), nil)
		require.NoError(t, err)
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	alice, bob := dial("alice"), dial("bob")
	for i := 1; i <= n; i++ {
		_, err := alice.Send(ctxT(t, 10*time.Second), chat.ID, fmt.Sprintf("m%03d", i), fmt.Sprintf("text %d", i))
		require.NoError(t, err)
	}
	got := collect(t, bob, n, 30*time.Second)
	for i, f := range got {
		require.EqualValues(t, i+1, f.Seq)
	}
	return chat.ID
}

// storedInOrder waits until st holds chat's n messages, seqs 1..n.
func storedInOrder(t *testing.T, st store.Store, chat string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		page, err := st.History(context.Background(), chat, store.HistoryQuery{Dir: store.Forward, Limit: store.MaxPage})
		if err != nil || len(page) != n {
			return false
		}
		for i, m := range page {
			if m.Seq != uint64(i+1) || m.MessageID != fmt.Sprintf("m%03d", i+1) {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the persister process stored every message in the shared store")
}

// TestLayoutOneMachineSharedSQLite: the one-machine recipe. Gateway, sequencer,
// persister and notifier processes share one SQLite file (WAL: several processes
// on one host may open it; SQLite serializes their writes); presence gets no store
// and opens none.
func TestLayoutOneMachineSharedSQLite(t *testing.T) {
	db := filepath.Join(t.TempDir(), "shared", "natter.db")
	gw, pc := layout(t, func(role string) []string {
		if role == "presence" {
			return nil
		}
		return []string{"--store.sqlite-path", db}
	})
	chat := chatFlows(t, gw, pc, 30)
	st, err := store.OpenSQLite(context.Background(), db)
	require.NoError(t, err)
	defer st.Close()
	storedInOrder(t, st, chat, 30)
	// Presence needs no store: it created none in its data directory.
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(gw.logf), "presence", "*.db"))
	require.NoError(t, err)
	require.Empty(t, matches, "the presence process opened a store")
}

// TestLayoutCassandra: the multi-machine recipe. Each role process reaches the
// same Cassandra keyspace (and NATS); only the first, the sequencer, applies the
// schema migrations (store.migrate); presence gets no store settings.
func TestLayoutCassandra(t *testing.T) {
	hosts := cassandraHosts(t)
	cfg := cassandraConfig(t, hosts)
	gw, pc := layout(t, func(role string) []string {
		switch role {
		case "presence":
			return nil
		case "sequencer":
			return []string{"--store.backend", "cassandra", "--store.migrate", "--cassandra.hosts", hosts,
				"--cassandra.keyspace", cfg.Cassandra.Keyspace, "--cassandra.replication-factor", "1", "--cassandra.bucket-width", "1h"}
		}
		return []string{"--store.backend", "cassandra", "--cassandra.hosts", hosts,
			"--cassandra.keyspace", cfg.Cassandra.Keyspace, "--cassandra.bucket-width", "1h"}
	})
	chat := chatFlows(t, gw, pc, 30)
	st, err := store.OpenCassandra(context.Background(), cfg.Cassandra, zap.NewNop())
	require.NoError(t, err)
	defer st.Close()
	storedInOrder(t, st, chat, 30)
}

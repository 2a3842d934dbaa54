package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// cassandraHosts returns NATTER_CASSANDRA_HOSTS, or skips the test saying how to run
// it; with NATTER_REQUIRE_CASSANDRA=1 (the full suite, CI) a missing node fails.
func cassandraHosts(t *testing.T) string {
	hosts := os.Getenv("NATTER_CASSANDRA_HOSTS")
	if hosts == "" {
		msg := "no Cassandra node: set NATTER_CASSANDRA_HOSTS or run `go tool task test`, which starts one from deploy/cassandra"
		if os.Getenv("NATTER_REQUIRE_CASSANDRA") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return hosts
}

// cassandraConfig returns a natter config on Cassandra at hosts, with a fresh
// keyspace (dropped at the end) and one-hour buckets.
func cassandraConfig(t *testing.T, hosts string) *app.Config {
	cfg := testutil.Config(t)
	cfg.Store.Backend = "cassandra"
	cfg.Store.Migrate = true
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cfg.Cassandra.RegisterFlags(fs)
	// Generous timeouts: the suite must pass on a busy machine.
	require.NoError(t, fs.Parse([]string{"-cassandra.hosts", hosts, "-cassandra.bucket-width", "1h", "-cassandra.replication-factor", "1",
		"-cassandra.timeout", "30s", "-cassandra.connect-timeout", "30s"}))
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg.Cassandra.Keyspace = "natter_e2e_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		cl := gocql.NewCluster(strings.Split(hosts, ",")...)
		cl.Timeout, cl.ConnectTimeout = 60*time.Second, 30*time.Second
		if s, err := cl.CreateSession(); err == nil {
			_ = s.Query("DROP KEYSPACE IF EXISTS " + cfg.Cassandra.Keyspace).Exec()
			s.Close()
		}
	})
	return cfg
}

func TestCassandraServeRestartHistory(t *testing.T) {
	cfg := cassandraConfig(t, cassandraHosts(t))
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := n.Dial(t, "alice")
	for i := 1; i <= 20; i++ {
		_, err := alice.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("m%02d", i), fmt.Sprintf("text %d", i))
		require.NoError(t, err)
	}
	collect(t, alice, 20, 20*time.Second)
	require.Eventually(t, func() bool {
		last, err := n.Store.LastSeq(context.Background(), chat)
		return err == nil && last == 20
	}, 30*time.Second, 50*time.Millisecond)
	n.Stop()

	n2 := testutil.StartNatter(t, cfg)
	p := history(t, n2, "bob", chat, "?limit=100")
	require.Equal(t, seqRange(20, 1), seqsOf(p.Messages), "history intact after a restart")
	require.Equal(t, "text 20", p.Messages[0].Content)
	alice = n2.Dial(t, "alice")
	_, err := alice.Send(ctxT(t, 10*time.Second), chat, "m21", "after restart")
	require.NoError(t, err)
	require.EqualValues(t, 21, next(t, alice, "message", 10*time.Second).Seq)
	chats := listChats(t, n2, "bob")
	require.Len(t, chats, 1)
	require.Eventually(t, func() bool { return listChats(t, n2, "bob")[0].Unread == 21 }, 30*time.Second, 100*time.Millisecond)
}

// cassandraNode runs a private node from deploy/cassandra on its own ports, so the
// test can stop and start it without disturbing the shared one.
type cassandraNode struct {
	t *testing.T
}

func (c *cassandraNode) run(cmd string) {
	script, err := filepath.Abs("../../deploy/cassandra/cassandra.sh")
	require.NoError(c.t, err)
	out, err := exec.Command("bash", script, cmd).CombinedOutput()
	require.NoError(c.t, err, "cassandra.sh %s: %s", cmd, out)
}

// TestCassandraOutageLosesNothing: the only Cassandra node stops and starts again.
// Sends made while it is down are stored but not acknowledged (the sequencer cannot
// check their message IDs); once it is back they are sequenced, resends are
// answered with the original seq, and the store ends with every message once, in
// order.
func TestCassandraOutageLosesNothing(t *testing.T) {
	cassandraHosts(t) // the full suite only: a second node needs the jars it fetched
	dir := t.TempDir()
	node := &cassandraNode{t: t}
	for _, kv := range []string{"CASSANDRA_NATIVE_PORT=9342", "CASSANDRA_STORAGE_PORT=7300", "CASSANDRA_JMX_PORT=off",
		"NATTER_CASSANDRA_DIR=" + filepath.Join(dir, "node"), "NATTER_CASSANDRA_HEAP_MIN=256M"} {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	node.run("start")
	t.Cleanup(func() { node.run("clean") })
	cfg := cassandraConfig(t, "127.0.0.1:9342")
	cfg.Persister.MaxBackoff = 500 * time.Millisecond
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	// send sends from..to in order. A send answered unavailable (a node that has just
	// restarted can take longer than the gateway waits for the sequencer) is resent
	// with the same message ID, as clients are told to; it must then get its seq,
	// once (the store is checked for duplicates and gaps below).
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			deadline := time.Now().Add(60 * time.Second)
			for {
				ack, err := alice.Send(ctxT(t, 10*time.Second), chat, fmt.Sprintf("m%03d", i), "x")
				var pe *protocol.Error
				if errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable && time.Now().Before(deadline) {
					continue
				}
				require.NoError(t, err)
				require.EqualValues(t, i, ack.Seq)
				break
			}
		}
	}
	send(1, 50)
	require.Len(t, collect(t, bob, 50, 20*time.Second), 50)

	node.run("stop")
	// An ack means sequenced, and the sequencer checks each new message ID against
	// the store's index (exactly once, forever): while the store is down a send is
	// stored in NATTER_IN but not acknowledged, and the client keeps it.
	_, err := alice.Send(ctxT(t, 30*time.Second), chat, "m051", "x")
	var pe *protocol.Error
	require.ErrorAs(t, err, &pe, "a send while the store is down is not acknowledged")
	require.Equal(t, protocol.CodeUnavailable, pe.Code, "%v", err)

	node.run("start")
	// Once the store answers, the stored send is sequenced and the client's resend
	// is answered with its seq; then sending goes on.
	require.Eventually(t, func() bool {
		ack, err := alice.Send(ctxT(t, 30*time.Second), chat, "m051", "x")
		return err == nil && ack.Seq == 51
	}, 120*time.Second, 500*time.Millisecond, "the send stored during the outage is sequenced once the store is back")
	send(52, 150)
	live := collect(t, bob, 100, 60*time.Second)
	require.EqualValues(t, 150, live[99].Seq)
	require.Eventually(t, func() bool {
		ms, err := readAll(n.Store, chat)
		if err != nil || len(ms) != 150 {
			return false
		}
		for i, m := range ms {
			if m.Seq != uint64(i+1) || m.MessageID != fmt.Sprintf("m%03d", i+1) {
				return false
			}
		}
		return true
	}, 90*time.Second, 250*time.Millisecond, "all 150 stored exactly once after the node is back")
	p := history(t, n, "bob", chat, "?limit=500")
	require.Equal(t, seqRange(150, 1), seqsOf(p.Messages))
}

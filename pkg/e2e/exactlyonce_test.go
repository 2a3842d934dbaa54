package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// TestExactlyOnceForever: a message resent with the same chat and
// messageId after JetStream's dedupe window has passed (2 s here), after the
// sequencer restarted, and after another sequencer instance took over is acked
// duplicate with the original seq, and history holds it once: over WebSocket, REST
// and pkg/publish, on SQLite and on Cassandra.
func TestExactlyOnceForever(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { exactlyOnceForever(t, testutil.Config(t)) })
	t.Run("cassandra", func(t *testing.T) { exactlyOnceForever(t, cassandraConfig(t, cassandraHosts(t))) })
}

func exactlyOnceForever(t *testing.T, base *app.Config) {
	ns := natstest.Server(t)
	withRoles := func(roles ...string) *app.Config {
		c := *base
		c.NATS.URL = ns.ClientURL()
		c.NATS.DedupWindow = 2 * time.Second
		c.Sequencer.PinnedTTL = 2 * time.Second // failover within the test's patience
		c.Roles = roles
		return &c
	}
	sequencer := func() *testutil.Natter { return testutil.StartNatter(t, withRoles(app.RoleSequencer)) }
	s1 := sequencer()
	n := testutil.StartNatter(t, withRoles(app.RoleGateway, app.RolePersister))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := n.Dial(t, "alice")
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	pub, err := publish.New(js, base.NATS.Prefix, "exactly-once")
	require.NoError(t, err)
	t.Cleanup(pub.Close)

	type ack struct {
		seq uint64
		dup bool
	}
	sendWS := func(id string) ack {
		f, err := alice.Send(ctxT(t, 15*time.Second), chat, id, "over WebSocket")
		require.NoError(t, err, id)
		require.Equal(t, protocol.FrameAck, f.Type)
		return ack{f.Seq, f.Duplicate}
	}
	sendREST := func(id string) ack {
		status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", n.Token(t, "alice"),
			map[string]any{"messageId": id, "content": "over REST"})
		require.Equal(t, http.StatusAccepted, status, string(body))
		var r struct {
			Seq       uint64 `json:"seq"`
			Duplicate bool   `json:"duplicate"`
		}
		require.NoError(t, json.Unmarshal(body, &r))
		return ack{r.Seq, r.Duplicate}
	}
	sendPub := func(id string) ack {
		a, err := pub.Publish(ctxT(t, 15*time.Second), &protocol.Message{ChatID: chat, MessageID: id, SenderID: "bot", Content: "from a service"})
		require.NoError(t, err, id)
		return ack{a.Seq, a.Duplicate}
	}
	sends := []struct {
		id   string
		send func(string) ack
	}{{"ws-1", sendWS}, {"rest-1", sendREST}, {"pub-1", sendPub}}
	first := map[string]uint64{}
	for _, s := range sends {
		a := s.send(s.id)
		require.False(t, a.dup, s.id)
		require.NotZero(t, a.seq, s.id)
		first[s.id] = a.seq
	}
	resendAll := func(when string) {
		t.Helper()
		for _, s := range sends {
			a := s.send(s.id)
			require.Equal(t, ack{first[s.id], true}, a, "%s resent %s: duplicate, original seq", s.id, when)
		}
	}

	time.Sleep(2*time.Second + 500*time.Millisecond)
	resendAll("after the dedupe window")

	s1.Stop()
	s2 := sequencer() // a restart: every chat state is loaded cold
	resendAll("after a sequencer restart")

	s3 := sequencer()
	s2.Stop() // s3 takes the partitions over once their pins expire
	resendAll("after a sequencer failover")
	_ = s3

	// New messages still get the next seqs; history holds every message once.
	require.Equal(t, ack{first["pub-1"] + 1, false}, sendWS("ws-2"))
	require.Eventually(t, func() bool {
		last, err := n.Store.LastSeq(ctxT(t, 5*time.Second), chat)
		return err == nil && last == first["pub-1"]+1
	}, 15*time.Second, 50*time.Millisecond, "the persister stored everything")
	p := history(t, n, "bob", chat, "?limit=100")
	count := map[string]int{}
	for _, m := range p.Messages {
		count[m.MessageID]++
	}
	for _, id := range []string{"ws-1", "rest-1", "pub-1", "ws-2"} {
		require.Equal(t, 1, count[id], "%s in history once", id)
	}
	for _, id := range []string{"ws-1", "rest-1", "pub-1"} {
		seq, err := n.Store.MessageSeq(ctxT(t, 5*time.Second), chat, id)
		require.NoError(t, err)
		require.Equal(t, first[id], seq, "%s stored under its first seq", id)
	}
}

package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/sequencer"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestValidate(t *testing.T) {
	ok := func() *protocol.Message {
		return &protocol.Message{ChatID: "c1", MessageID: "m1", SenderID: "bot", Content: "hi", MessageType: protocol.TypeText}
	}
	for _, tc := range []struct {
		name string
		mod  func(m *protocol.Message)
	}{
		{"chat with a dot", func(m *protocol.Message) { m.ChatID = "a.b" }},
		{"chat wildcard", func(m *protocol.Message) { m.ChatID = ">" }},
		{"empty sender", func(m *protocol.Message) { m.SenderID = "" }},
		{"long message id", func(m *protocol.Message) { m.MessageID = strings.Repeat("x", 65) }},
		{"content too large", func(m *protocol.Message) { m.Content = strings.Repeat("x", protocol.MaxContentBytes+1) }},
		{"meta too large", func(m *protocol.Message) {
			m.Meta = json.RawMessage(`{"k":"` + strings.Repeat("x", protocol.MaxMetaBytes) + `"}`)
		}},
		{"meta not an object", func(m *protocol.Message) { m.Meta = json.RawMessage(`[1]`) }},
		{"bad type", func(m *protocol.Message) { m.MessageType = "a b" }},
		{"nothing to say", func(m *protocol.Message) { m.Content = "" }},
		{"refId on text", func(m *protocol.Message) { m.RefID = "m0" }},
		{"edit without refId", func(m *protocol.Message) { m.MessageType = protocol.TypeEdit }},
		{"delete with content", func(m *protocol.Message) { m.MessageType, m.RefID = protocol.TypeDelete, "m0" }},
		{"react without emoji", func(m *protocol.Message) { m.MessageType, m.RefID, m.Content = protocol.TypeReact, "m0", "" }},
		{"bad replyTo", func(m *protocol.Message) { m.ReplyTo = "x y" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ok()
			tc.mod(m)
			require.ErrorIs(t, publish.Validate(m), publish.ErrInvalid)
		})
	}
	require.NoError(t, publish.Validate(ok()))
	del := &protocol.Message{ChatID: "c1", MessageID: "m2", SenderID: "mod", MessageType: protocol.TypeDelete, RefID: "m1"}
	require.NoError(t, publish.Validate(del))
	_, err := publish.New(nil, "", "svc")
	require.Error(t, err)
}

// accountsServer starts a NATS server configured from deploy/nats/accounts.conf (on
// a free loopback port, with a temporary store) and returns its URL.
func accountsServer(t *testing.T) string {
	t.Helper()
	for _, u := range natsutil.Users {
		t.Setenv(natsutil.PasswordEnv(u), u+"-secret")
	}
	t.Setenv("NATTER_SYS_NATS_PASSWORD", "sys-secret")
	opts, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", "accounts.conf"))
	require.NoError(t, err)
	opts.Host, opts.Port, opts.StoreDir, opts.JetStream, opts.NoSigs = "127.0.0.1", -1, t.TempDir(), true, true
	ns, err := server.NewServer(opts)
	require.NoError(t, err)
	go ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

// TestAccountsLetAServicePublishButNotRead proves deploy/nats/accounts.conf: the
// backend user publishes through pkg/publish and gets the sequencer's answer (a
// sequencer runs as its own user, so its answers are allowed too); it may not
// subscribe to users' subjects, the log, other inboxes or the gateways' answers,
// nor publish anywhere but natter.svc (not even natter.in, the gateways' ingress),
// nor use the JetStream API.
func TestAccountsLetAServicePublishButNotRead(t *testing.T) {
	url := accountsServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The sequencer's user sets up the streams, as it does at start; the gateway's
	// reads deliveries.
	nc, err := nats.Connect(url, nats.UserInfo("sequencer", "sequencer-secret"), nats.CustomInboxPrefix("_INBOX_sequencer"))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ncfg := natsutil.DefaultConfig()
	ncfg.Partitions = 2
	require.NoError(t, natsutil.EnsureOwned(ctx, js, &ncfg, natsutil.Owned{Core: true}))
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "natter.db"))
	require.NoError(t, err)
	defer st.Close()
	var scfg sequencer.Config
	scfg.RegisterFlags(flag.NewFlagSet("sequencer", flag.PanicOnError))
	seq, err := sequencer.New(scfg, sequencer.Deps{NC: nc, JS: js, Store: st, Subjects: ncfg.Subjects()}, zap.NewNop())
	require.NoError(t, err)
	sctx, sstop := context.WithCancel(context.Background())
	sdone := make(chan error, 1)
	go func() { sdone <- seq.Run(sctx) }()
	defer func() {
		sstop()
		require.NoError(t, <-sdone)
	}()
	gw, err := nats.Connect(url, nats.UserInfo("gateway", "gateway-secret"), nats.CustomInboxPrefix("_INBOX_gateway"))
	require.NoError(t, err)
	defer gw.Close()
	deliveries, err := gw.SubscribeSync("natter.user.alice")
	require.NoError(t, err)

	var mu sync.Mutex
	var violations []string
	svc, err := nats.Connect(url, nats.UserInfo("backend", "backend-secret"), nats.CustomInboxPrefix("_INBOX_backend"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			violations = append(violations, err.Error())
			mu.Unlock()
		}))
	require.NoError(t, err)
	defer svc.Close()
	sjs, err := jetstream.New(svc)
	require.NoError(t, err)
	pub, err := publish.New(sjs, "", "reminder-bot")
	require.NoError(t, err)

	// Allowed: publish onto the ingress, answered by the sequencer with the seq.
	ack, err := pub.Text(ctx, "chat1", "reminder-bot", "stand-up in 5 minutes")
	require.NoError(t, err)
	require.False(t, ack.Duplicate)
	require.Equal(t, uint64(1), ack.Seq)
	again, err := pub.Publish(ctx, &protocol.Message{ChatID: "chat1", MessageID: ack.MessageID, SenderID: "reminder-bot", Content: "stand-up in 5 minutes"})
	require.NoError(t, err)
	require.True(t, again.Duplicate, "a resend is sequenced once")
	require.Equal(t, ack.Seq, again.Seq, "and answered with the original seq")
	logS, err := js.Stream(ctx, subjects.LogStream)
	require.NoError(t, err)
	raw, err := logS.GetLastMsgForSubject(ctx, "natter.log.chat1")
	require.NoError(t, err)
	require.Equal(t, uint64(1), raw.Sequence, "one message in the log")
	got, err := protocol.DecodeMessageFrame(raw.Data)
	require.NoError(t, err)
	require.Equal(t, "stand-up in 5 minutes", got.Content)
	require.Equal(t, "reminder-bot", got.SenderID)

	// Denied: reading users' deliveries, the log, other inboxes.
	denied := func(what string) {
		t.Helper()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, v := range violations {
				if strings.Contains(v, "Permissions Violation") && strings.Contains(v, what) {
					return true
				}
			}
			return false
		}, 5*time.Second, 10*time.Millisecond, "no permissions violation for %s; got %v", what, violations)
	}
	for _, subj := range []string{"natter.user.>", "natter.user.alice", "natter.log.>", "_INBOX.>", "natter.presence.>", "natter.answer.gw.>"} {
		sub, err := svc.SubscribeSync(subj)
		require.NoError(t, err) // refused asynchronously by the server
		require.NoError(t, svc.Flush())
		denied("Subscription to \"" + subj + "\"")
		_, err = sub.NextMsg(50 * time.Millisecond)
		require.Error(t, err)
	}
	// Denied: publishing elsewhere (a forged delivery to a user, the log).
	require.NoError(t, svc.Publish("natter.user.alice", []byte(`{"type":"message","content":"forged"}`)))
	require.NoError(t, svc.Flush())
	denied(`Publish to "natter.user.alice"`)
	_, err = deliveries.NextMsg(200 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "the forged delivery did not arrive")
	require.NoError(t, svc.Publish("natter.log.chat1", []byte("x")))
	require.NoError(t, svc.Flush())
	denied(`Publish to "natter.log.chat1"`)
	// Denied: the gateways' ingress, whose headers the sequencer believes.
	require.NoError(t, svc.Publish("natter.in.chat1", []byte("x")))
	require.NoError(t, svc.Flush())
	denied(`Publish to "natter.in.chat1"`)
	// Denied: the JetStream API (e.g. reading the log stream's messages directly).
	sctx, scancel := context.WithTimeout(ctx, time.Second) // a denied request just gets no answer
	defer scancel()
	_, err = sjs.Stream(sctx, subjects.LogStream)
	require.Error(t, err)
	denied(`Publish to "$JS.API.STREAM.INFO.NATTER_LOG"`)
	// A wrong password is refused outright.
	_, err = nats.Connect(url, nats.UserInfo("backend", "guess"))
	require.Error(t, err)
	require.True(t, errors.Is(err, nats.ErrAuthorization) || strings.Contains(err.Error(), "Authorization"), "%v", err)
}

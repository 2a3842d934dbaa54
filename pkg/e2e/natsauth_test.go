package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// The embedded NATS server once accepted anyone, and a backend service could make
// itself admin of a chat over NATS: both attacked here over real sockets. docs/security.md, "NATS principals", lists what each proves.

// violations collects a NATS connection's asynchronous errors.
type violations struct {
	mu   sync.Mutex
	seen []string
}

func (v *violations) add(err error) {
	v.mu.Lock()
	v.seen = append(v.seen, err.Error())
	v.mu.Unlock()
}

// requireDenied waits until the server has refused what (e.g. `Publish to "x"`).
func (v *violations) requireDenied(t *testing.T, what string) {
	t.Helper()
	require.Eventually(t, func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, s := range v.seen {
			if strings.Contains(s, "Permissions Violation") && strings.Contains(s, what) {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "the server did not refuse %s", what)
}

// listening is a test config whose embedded server listens on a loopback port.
func listening(t *testing.T) *app.Config {
	c := testutil.Config(t)
	c.NATS.Listen = "127.0.0.1:-1"
	return c
}

// TestEmbeddedNATSIsInProcessByDefault: with the default nats.listen the embedded
// server has no TCP listener at all, every role still works (each as its own NATS
// user, in-process), and the generated credentials are private to their owner.
func TestEmbeddedNATSIsInProcessByDefault(t *testing.T) {
	require.Equal(t, "none", app.DefaultConfig().NATS.Listen, "the default serves in-process only")
	cfg := testutil.Config(t)
	cfg.NATS.Listen = app.DefaultConfig().NATS.Listen
	n := testutil.StartNatter(t, cfg)
	require.Nil(t, n.NATS.Addr(), "no TCP listener")
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	_, err := alice.Send(ctxT(t, 5*time.Second), chat, "m1", "hello")
	require.NoError(t, err)
	require.Equal(t, "hello", next(t, bob, protocol.FrameMessage, 5*time.Second).Content)

	st, err := os.Stat(n.NATSCredsDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	for _, u := range natsutil.Users {
		st, err := os.Stat(natsutil.PasswordFile(n.NATSCredsDir, u))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), u)
	}
}

// TestNATSListenerRequiresCredentials: a listener asked for takes no anonymous
// client, no wrong password and no user with another's password.
func TestNATSListenerRequiresCredentials(t *testing.T) {
	n := testutil.StartNatter(t, listening(t))
	url := n.NATS.ClientURL()
	backendPW, err := natsutil.ReadPasswordFile(natsutil.PasswordFile(n.NATSCredsDir, natsutil.UserBackend))
	require.NoError(t, err)
	for name, opts := range map[string][]nats.Option{
		"anonymous":             nil,
		"wrong password":        {nats.UserInfo(natsutil.UserGateway, "guess")},
		"another user's secret": {nats.UserInfo(natsutil.UserAdmin, backendPW)},
		"unknown user":          {nats.UserInfo("natter", "natter")},
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
			}
			require.Error(t, err)
			require.Contains(t, strings.ToLower(err.Error()), "authorization")
		})
	}
	// The generated credentials work.
	nc := n.ConnectNATS(t, natsutil.UserBackend, nil)
	require.NoError(t, nc.Flush())
}

// TestNATSNonLoopbackListenWithoutTLSIsRefused: natter serve refuses to start with
// one clear line, before binding anything.
func TestNATSNonLoopbackListenWithoutTLSIsRefused(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := app.Main([]string{"serve", "--data-dir", t.TempDir(), "--nats.listen", "0.0.0.0:4222",
		"--gateway.listen", "127.0.0.1:0", "--admin.listen="}, &stdout, &stderr)
	require.Equal(t, 1, code, stderr.String())
	require.Contains(t, stderr.String(), "nats.listen 0.0.0.0:4222 is not a loopback address and has no TLS")
	require.Equal(t, 1, strings.Count(stderr.String(), "loopback"), "one line says it: %s", stderr.String())
}

// TestNATSRolesAreRefusedWhatTheyMayNotDo: each role's and the backend's user,
// connected over TCP with its own credentials, is refused by the server what its
// role does not need: a gateway cannot append to the log or delete streams, a
// backend cannot read users' deliveries, publish on the gateways' ingress or call
// the JetStream API, and so on. Nothing it tried changed anything.
func TestNATSRolesAreRefusedWhatTheyMayNotDo(t *testing.T) {
	n := testutil.StartNatter(t, listening(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	bob := n.Dial(t, "bob")
	ctx := ctxT(t, 30*time.Second)
	logBefore := lastSeq(t, n, chat)
	pub := func(subj string) func(nc *nats.Conn) error {
		return func(nc *nats.Conn) error { return nc.Publish(subj, []byte(`{"type":"message","content":"forged"}`)) }
	}
	sub := func(subj string) func(nc *nats.Conn) error {
		return func(nc *nats.Conn) error { _, err := nc.SubscribeSync(subj); return err }
	}
	type attempt struct {
		what   string // the refusal the server reports
		action func(nc *nats.Conn) error
	}
	deleteLog := attempt{`Publish to "$JS.API.STREAM.DELETE.NATTER_LOG"`, pub("$JS.API.STREAM.DELETE.NATTER_LOG")}
	for user, attempts := range map[string][]attempt{
		natsutil.UserGateway: {
			{`Publish to "natter.log.` + chat + `"`, pub("natter.log." + chat)},
			{`Publish to "natter.svc.` + chat + `"`, pub("natter.svc." + chat)},
			deleteLog,
			{`Publish to "$JS.API.STREAM.DELETE.NATTER_IN"`, pub("$JS.API.STREAM.DELETE.NATTER_IN")},
			{`Publish to "$JS.API.STREAM.PURGE.NATTER_LOG"`, pub("$JS.API.STREAM.PURGE.NATTER_LOG")},
			{`Publish to "$JS.API.STREAM.DELETE.KV_presence"`, pub("$JS.API.STREAM.DELETE.KV_presence")},
			{`Publish to "$JS.API.CONSUMER.DELETE.NATTER_LOG.PERSISTER"`, pub("$JS.API.CONSUMER.DELETE.NATTER_LOG.PERSISTER")},
			{`Publish to "$JS.API.CONSUMER.CREATE.NATTER_LOG.NOTIFIER"`, pub("$JS.API.CONSUMER.CREATE.NATTER_LOG.NOTIFIER")},
			{`Subscription to "_INBOX.>"`, sub("_INBOX.>")},
			{`Subscription to ">"`, sub(">")},
		},
		natsutil.UserSequencer: {
			deleteLog,
			{`Publish to "natter.in.` + chat + `"`, pub("natter.in." + chat)},
			{`Subscription to "natter.user.>"`, sub("natter.user.>")},
			{`Publish to "$KV.presence.u.bob"`, pub("$KV.presence.u.bob")},
		},
		natsutil.UserPersister: {
			{`Publish to "natter.user.bob"`, pub("natter.user.bob")},
			{`Publish to "natter.log.` + chat + `"`, pub("natter.log." + chat)},
			{`Subscription to "natter.user.>"`, sub("natter.user.>")},
			{`Publish to "$JS.API.CONSUMER.DELETE.NATTER_LOG.NOTIFIER"`, pub("$JS.API.CONSUMER.DELETE.NATTER_LOG.NOTIFIER")},
			deleteLog,
		},
		natsutil.UserNotifier: {
			{`Publish to "natter.user.bob"`, pub("natter.user.bob")},
			{`Publish to "natter.in.` + chat + `"`, pub("natter.in." + chat)},
			{`Publish to "$JS.API.CONSUMER.DELETE.NATTER_LOG.PERSISTER"`, pub("$JS.API.CONSUMER.DELETE.NATTER_LOG.PERSISTER")},
			{`Subscription to "natter.user.>"`, sub("natter.user.>")},
			deleteLog,
		},
		natsutil.UserPresence: {
			{`Publish to "natter.user.bob"`, pub("natter.user.bob")},
			{`Publish to "natter.log.` + chat + `"`, pub("natter.log." + chat)},
			{`Subscription to "natter.user.>"`, sub("natter.user.>")},
			deleteLog,
		},
		natsutil.UserBackend: {
			{`Subscription to ">"`, sub(">")},
			{`Subscription to "natter.user.>"`, sub("natter.user.>")},
			{`Subscription to "natter.log.>"`, sub("natter.log.>")},
			{`Subscription to "_INBOX_gateway.>"`, sub("_INBOX_gateway.>")},
			{`Publish to "natter.user.bob"`, pub("natter.user.bob")},
			{`Publish to "natter.in.` + chat + `"`, pub("natter.in." + chat)},
			{`Publish to "natter.log.` + chat + `"`, pub("natter.log." + chat)},
			deleteLog,
			{`Publish to "$JS.API.STREAM.DELETE.NATTER_IN"`, pub("$JS.API.STREAM.DELETE.NATTER_IN")},
			{`Publish to "$JS.API.STREAM.DELETE.KV_presence"`, pub("$JS.API.STREAM.DELETE.KV_presence")},
			{`Publish to "$JS.API.STREAM.MSG.GET.NATTER_LOG"`, pub("$JS.API.STREAM.MSG.GET.NATTER_LOG")},
			{`Publish to "$KV.presence.u.bob"`, pub("$KV.presence.u.bob")},
		},
	} {
		t.Run(user, func(t *testing.T) {
			var v violations
			nc := n.ConnectNATS(t, user, v.add)
			for _, a := range attempts {
				require.NoError(t, a.action(nc))
				require.NoError(t, nc.Flush())
				v.requireDenied(t, a.what)
			}
		})
	}
	// Nothing reached bob, the log or the streams.
	quiet(t, bob, 200*time.Millisecond)
	require.Equal(t, logBefore, lastSeq(t, n, chat))
	for _, s := range []string{subjects.LogStream, subjects.InStream, "KV_presence"} {
		_, err := n.JS.Stream(ctx, s)
		require.NoError(t, err, "stream %s still exists", s)
	}
}

// TestBackendUserCannotMakeItselfAdmin: the attack of finding 3 over NATS. The
// backend user publishes, on the service ingress it may use, a system member_added
// adding mallory as admin "by alice". JetStream stores it, the sequencer refuses
// it: mallory is not a member and cannot read the chat.
func TestBackendUserCannotMakeItselfAdmin(t *testing.T) {
	n := testutil.StartNatter(t, listening(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	bob := n.Dial(t, "bob")
	ctx := ctxT(t, 20*time.Second)
	alice := n.Dial(t, "alice")
	_, err := alice.Send(ctx, chat, "secret", "the launch code is 1234")
	require.NoError(t, err)
	next(t, bob, protocol.FrameMessage, 5*time.Second)

	nc := n.ConnectNATS(t, natsutil.UserBackend, nil)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	for i, ev := range []protocol.SystemEvent{
		{Event: protocol.EventMemberAdded, UserID: "mallory", Role: "admin", By: "alice"},
		{Event: protocol.EventRoleChanged, UserID: "bob", Role: "admin", By: "alice"},
		{Event: protocol.EventMemberRemoved, UserID: "alice", By: "alice"},
	} {
		meta, err := json.Marshal(ev)
		require.NoError(t, err)
		m := &protocol.Message{ChatID: chat, MessageID: "evil" + string(rune('a'+i)), SenderID: "alice", MessageType: protocol.TypeSystem, Meta: meta}
		msg := &nats.Msg{Subject: "natter.svc." + chat, Data: protocol.EncodeIngress(m), Header: nats.Header{}}
		// Headers that would make a gateway's message a vouched-for change count for
		// nothing on the service subject.
		msg.Header.Set(protocol.HeaderChange, "1")
		msg.Header.Set(protocol.HeaderService, "1")
		_, err = js.PublishMsg(ctx, msg)
		require.NoError(t, err, "stored for sequencing")
	}
	// A later service post is sequenced after the refused changes (chat order).
	text := &protocol.Message{ChatID: chat, MessageID: "after", SenderID: "ops-bot", Content: "still here", MessageType: protocol.TypeText}
	msg := &nats.Msg{Subject: "natter.svc." + chat, Data: protocol.EncodeIngress(text), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, chat+":after")
	_, err = js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	f := next(t, bob, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, "after", f.MessageID, "the forged changes were not sequenced")

	require.Equal(t, []string{"alice:admin", "bob:member"}, members(t, n, chat, "alice"))
	status, body := n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages", n.Token(t, "mallory"), nil)
	requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
}

// TestServiceTokenCannotChangeChats: the attack of finding 3 over REST. A service
// token posts a system member_added for itself "by alice": refused, nothing
// sequenced, it cannot read. Adding itself through the members API is refused too
// (it is no admin of the chat). A service token holding the chats:admin scope may
// add members; the event's by is the token's subject, whatever the body says.
func TestServiceTokenCannotChangeChats(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	bob := n.Dial(t, "bob")
	svc := n.ServiceToken(t, "evil-bot")
	seq := lastSeq(t, n, chat)

	for _, ev := range []string{protocol.EventMemberAdded, protocol.EventRoleChanged, protocol.EventMemberRemoved, protocol.EventChatRenamed} {
		status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/messages", svc, map[string]any{"senderId": "alice", "messageType": "system",
			"meta": map[string]string{"event": ev, "userId": "evil-bot", "role": "admin", "by": "alice", "name": "pwned"}})
		requireRefused(t, status, body, http.StatusForbidden, protocol.CodeForbidden)
	}
	status, body := n.Do(t, "POST", "/api/v1/chats/"+chat+"/members", svc, map[string]any{"userId": "evil-bot", "role": "admin"})
	requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
	status, body = n.Do(t, "POST", "/api/v1/chats/"+chat+"/members", svc, map[string]any{"userId": "evil-bot", "by": "alice"})
	requireRefused(t, status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	status, body = n.Do(t, "GET", "/api/v1/chats/"+chat+"/messages", svc, nil)
	requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
	quiet(t, bob, 200*time.Millisecond)
	require.Equal(t, seq, lastSeq(t, n, chat), "nothing was sequenced")
	require.Equal(t, []string{"alice:admin", "bob:member"}, members(t, n, chat, "alice"))

	// With the explicit scope, a service administers the group; by is its own ID.
	admin := n.ScopedServiceToken(t, "directory-sync", protocol.ScopeChatsAdmin)
	status, body = n.Do(t, "POST", "/api/v1/chats/"+chat+"/members", admin, map[string]any{"userId": "carol"})
	require.Equal(t, http.StatusCreated, status, string(body))
	f := next(t, bob, protocol.FrameMessage, 5*time.Second)
	var ev protocol.SystemEvent
	require.NoError(t, json.Unmarshal(f.Meta, &ev))
	require.Equal(t, protocol.EventMemberAdded, ev.Event)
	require.Equal(t, "carol", ev.UserID)
	require.Equal(t, "directory-sync", ev.By, "by is the authenticated principal")
	require.Equal(t, "directory-sync", f.SenderID)
	require.Equal(t, []string{"alice:admin", "bob:member", "carol:member"}, members(t, n, chat, "alice"))
	// The scope means nothing on a user token.
	status, body = n.Do(t, "POST", "/api/v1/chats/"+chat+"/members", n.TokenWithScope(t, "mallory", protocol.ScopeChatsAdmin), map[string]any{"userId": "mallory"})
	requireRefused(t, status, body, http.StatusForbidden, protocol.CodeNotMember)
}

// TestRolesRunAsTheirOwnUsersOverTCP: a deployment split over processes, each role
// connecting to one NATS listener as its own user (nats.user, nats.password-file),
// works end to end with only those permissions (each process's NATS refusals are
// counted and must be zero: testutil.StartNatter checks at cleanup), and the
// processes that do not own a stream wait for it rather than create it.
func TestRolesRunAsTheirOwnUsersOverTCP(t *testing.T) {
	hub := listening(t)
	hub.Roles = []string{app.RolePresence}
	hubN := testutil.StartNatter(t, hub)
	url, dir := hubN.NATS.ClientURL(), hubN.NATSCredsDir
	var gw *testutil.Natter
	procs := []*testutil.Natter{hubN}
	for _, role := range []string{app.RoleSequencer, app.RolePersister, app.RoleNotifier, app.RoleGateway} {
		c := testutil.Config(t)
		c.Roles = []string{role}
		c.NATS.URL, c.NATS.User, c.NATS.PasswordFile = url, role, natsutil.PasswordFile(dir, role)
		c.Store.SQLitePath = hubN.Config.DataDir + "/shared.db"
		n := testutil.StartNatter(t, c)
		procs = append(procs, n)
		if role == app.RoleGateway {
			gw = n
		}
	}
	// Every process serves its consumer-lag metrics with its own user's permissions:
	// the shared streams' consumers and the notifier's window consumer.
	// (The notifier creates its window consumer once it runs: waited for.)
	for _, n := range procs {
		var scrapeErr atomic.Value // the last scrape's error, if any
		require.Eventually(t, func() bool {
			fams, err := n.Metrics.Registry.Gather()
			scrapeErr.Store(fmt.Sprint(err))
			if err != nil {
				return false
			}
			for _, f := range fams {
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						if f.GetName() == "natter_consumer_pending" && l.GetValue() == subjects.NotifierWindowConsumer {
							return true
						}
					}
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond, "%v reports the window consumer's lag", n.Config.Roles)
		require.Equal(t, "<nil>", scrapeErr.Load(), "metrics of %v", n.Config.Roles)
	}
	chat := gw.CreateChat(t, "alice", "group", "g", "bob")
	alice, bob := gw.Dial(t, "alice"), gw.Dial(t, "bob")
	ctx := ctxT(t, 20*time.Second)
	for _, id := range []string{"m1", "m2"} {
		_, err := alice.Send(ctx, chat, id, "hello "+id)
		require.NoError(t, err)
		require.Equal(t, id, next(t, bob, protocol.FrameMessage, 5*time.Second).MessageID)
	}
	status, body := gw.Do(t, "POST", "/api/v1/chats/"+chat+"/members", gw.Token(t, "alice"), map[string]any{"userId": "carol"})
	require.Equal(t, http.StatusCreated, status, string(body))
	require.Equal(t, protocol.EventMemberAdded, protocol.ChatChangeIn(next(t, bob, protocol.FrameMessage, 5*time.Second).Meta))
	var page struct {
		Messages []protocol.Message `json:"messages"`
	}
	require.Eventually(t, func() bool {
		status, body := gw.Do(t, "GET", "/api/v1/chats/"+chat+"/messages", gw.Token(t, "bob"), nil)
		return status == http.StatusOK && json.Unmarshal(body, &page) == nil && len(page.Messages) == 3
	}, 10*time.Second, 50*time.Millisecond, "history through the gateway's user")
}

// TestNATSListenerOnAllInterfacesNeedsTLS: with a certificate the embedded server may
// listen on every interface; clients then need TLS and credentials.
func TestNATSListenerOnAllInterfacesNeedsTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := testutil.Config(t)
	cfg.NATS.Listen, cfg.NATS.ListenTLSCert, cfg.NATS.ListenTLSKey = "0.0.0.0:-1", certFile, keyFile
	n := testutil.StartNatter(t, cfg)
	port := n.NATS.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	pw, err := natsutil.ReadPasswordFile(natsutil.PasswordFile(n.NATSCredsDir, natsutil.UserBackend))
	require.NoError(t, err)

	nc, err := nats.Connect(url, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		nats.UserInfo(natsutil.UserBackend, pw), nats.CustomInboxPrefix(natsutil.InboxPrefix(natsutil.UserBackend)))
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	nc.Close()

	_, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.UserInfo(natsutil.UserBackend, pw), nats.MaxReconnects(0))
	require.Error(t, err, "no clear-text connection")
	_, err = nats.Connect(url, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nats.MaxReconnects(0))
	require.Error(t, err, "TLS without credentials is refused too")
}

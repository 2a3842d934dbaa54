package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Presence timings for tests: short, so expiries happen within a test.
const (
	testExpiry    = 2 * time.Second
	testGrace     = time.Second
	testHeartbeat = 250 * time.Millisecond
)

// presenceConfig is a test configuration with short presence and typing timings.
func presenceConfig(t *testing.T) *app.Config {
	c := testutil.Config(t)
	c.Presence.Expiry = testExpiry
	c.Presence.Grace = testGrace
	c.Gateway.Presence.Heartbeat = testHeartbeat
	c.Gateway.Typing.Throttle = 400 * time.Millisecond
	c.Gateway.Typing.Expiry = time.Second
	return c
}

// twoGateways starts natter with every role (a) and a second process running only a
// gateway (b), sharing one NATS server and one data directory (SQLite, dev secret).
func twoGateways(t *testing.T) (a, b *testutil.Natter) {
	ns := natstest.Server(t)
	ca := presenceConfig(t)
	ca.NATS.URL = ns.ClientURL()
	a = testutil.StartNatter(t, ca)
	cb := presenceConfig(t)
	cb.NATS.URL = ns.ClientURL()
	cb.DataDir = ca.DataDir
	cb.Roles = []string{app.RoleGateway}
	b = testutil.StartNatter(t, cb)
	return a, b
}

// presenceOf waits for a presence_update about uid with status.
func presenceOf(t *testing.T, c *client.Conn, uid, status string, d time.Duration) *protocol.Frame {
	t.Helper()
	return nextFrame(t, c, d, "presence_update "+uid+" "+status, func(f *protocol.Frame) bool {
		return f.Type == protocol.FramePresenceUpdate && f.UserID == uid && f.Status == status
	})
}

// noFrame asserts no frame matching match arrives within d.
func noFrame(t *testing.T, c *client.Conn, d time.Duration, match func(*protocol.Frame) bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-c.Frames():
			if !ok {
				return
			}
			if match(f) {
				t.Fatalf("unexpected frame: %+v", f)
			}
		case <-timer.C:
			return
		}
	}
}

type presenceResp struct {
	UserID   string `json:"userId"`
	Status   string `json:"status"`
	LastSeen int64  `json:"lastSeen"`
	Devices  int    `json:"devices"`
	Set      string `json:"set"`
}

func getPresence(t *testing.T, n *testutil.Natter, caller, uid string) (int, presenceResp, string) {
	t.Helper()
	status, body := n.Do(t, "GET", "/api/v1/users/"+uid+"/presence", n.Token(t, caller), nil)
	var p presenceResp
	if status == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &p))
	}
	return status, p, string(body)
}

func subscribePresence(t *testing.T, c *client.Conn, id string, uids ...string) {
	t.Helper()
	require.NoError(t, c.Frame(ctxT(t, 5*time.Second), &protocol.Frame{Type: protocol.FramePresenceSub, ID: id, UserIDs: uids}))
}

func TestPresenceAcrossTwoGateways(t *testing.T) {
	a, b := twoGateways(t)
	a.CreateChat(t, "alice", "direct", "", "bob")
	alice := a.Dial(t, "alice")

	subscribePresence(t, alice, "p1", "bob")
	f := presenceOf(t, alice, "bob", "offline", 5*time.Second)
	require.Equal(t, "p1", f.ID, "the answer carries the request id")
	require.Zero(t, f.LastSeen, "never seen")

	// bob connects two devices on the other gateway: alice sees him online.
	bob1, bob2 := b.Dial(t, "bob"), b.Dial(t, "bob")
	nextFrame(t, alice, 10*time.Second, "bob online with 2 devices", func(f *protocol.Frame) bool {
		return f.Type == protocol.FramePresenceUpdate && f.UserID == "bob" && f.Status == "online" && f.Devices == 2
	})
	status, p, body := getPresence(t, a, "alice", "bob")
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, presenceResp{UserID: "bob", Status: "online", Devices: 2}, p)

	// Closing every device: offline after the grace period, with last seen.
	before := time.Now().UnixMilli()
	require.NoError(t, bob1.Close())
	require.NoError(t, bob2.Close())
	f = presenceOf(t, alice, "bob", "offline", 10*time.Second)
	require.GreaterOrEqual(t, f.LastSeen, before-100, "last seen is when the last device left")
	require.LessOrEqual(t, f.LastSeen, time.Now().UnixMilli())
	status, p, _ = getPresence(t, a, "alice", "bob")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "offline", p.Status)
	require.Equal(t, f.LastSeen, p.LastSeen)

	// A quick reconnect within the grace period does not flap.
	bob3 := b.Dial(t, "bob")
	presenceOf(t, alice, "bob", "online", 10*time.Second)
	require.NoError(t, bob3.Close())
	bob4 := b.Dial(t, "bob")
	noFrame(t, alice, testGrace+time.Second, func(f *protocol.Frame) bool {
		return f.Type == protocol.FramePresenceUpdate && f.Status == "offline"
	})
	_ = bob4

	// Severing bob's gateway from NATS (its connection is cut first, so no
	// disconnect report reaches presence): bob goes offline by himself once the
	// gateway's lease expires.
	severed := time.Now()
	b.Sever()
	f = presenceOf(t, alice, "bob", "offline", testExpiry+5*time.Second)
	took := time.Since(severed)
	t.Logf("offline %s after the cut (expiry %s)", took.Round(time.Millisecond), testExpiry)
	require.Less(t, took, testExpiry+2*time.Second, "offline within the configured expiry (plus marker handling)")
	// Last seen is the gateway's last heartbeat, as the expiry marker dates it
	// (the server's expiry timer may run a little late).
	require.LessOrEqual(t, f.LastSeen, severed.Add(500*time.Millisecond).UnixMilli())
	require.Greater(t, f.LastSeen, severed.Add(-testExpiry-time.Second).UnixMilli())
}

func TestPresenceStatusAwayAndInvisible(t *testing.T) {
	n := testutil.StartNatter(t, presenceConfig(t))
	n.CreateChat(t, "alice", "direct", "", "bob")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	subscribePresence(t, alice, "s", "bob")
	presenceOf(t, alice, "bob", "online", 10*time.Second)

	put := func(status string) presenceResp {
		t.Helper()
		code, body := n.Do(t, "PUT", "/api/v1/users/bob/presence", n.Token(t, "bob"), map[string]string{"status": status})
		require.Equal(t, http.StatusOK, code, string(body))
		var p presenceResp
		require.NoError(t, json.Unmarshal(body, &p))
		return p
	}
	p := put("away")
	require.Equal(t, presenceResp{UserID: "bob", Status: "away", Devices: 1, Set: "away"}, p)
	f := presenceOf(t, alice, "bob", "away", 5*time.Second)
	require.Equal(t, 1, f.Devices)

	p = put("invisible")
	require.Equal(t, "offline", p.Status, "others see an invisible user offline")
	require.Equal(t, "invisible", p.Set)
	require.Equal(t, 1, p.Devices, "bob himself sees his devices")
	f = presenceOf(t, alice, "bob", "offline", 5*time.Second)
	require.NotZero(t, f.LastSeen)
	require.Zero(t, f.Devices)
	_, seen, _ := getPresence(t, n, "alice", "bob")
	require.Equal(t, presenceResp{UserID: "bob", Status: "offline", LastSeen: f.LastSeen}, seen, "no devices, no chosen status shown to others")

	put("online")
	presenceOf(t, alice, "bob", "online", 5*time.Second)
	_, self, _ := getPresence(t, n, "bob", "bob")
	require.Equal(t, presenceResp{UserID: "bob", Status: "online", Devices: 1, Set: "online"}, self)
	_ = bob
}

func TestPresenceSubRefusedForNonMembers(t *testing.T) {
	n := testutil.StartNatter(t, presenceConfig(t))
	n.CreateChat(t, "alice", "group", "g", "bob")
	mallory := n.Dial(t, "mallory")

	// Refused with a clear code, naming the user, and nothing is subscribed.
	subscribePresence(t, mallory, "m1", "alice")
	f := next(t, mallory, protocol.FrameError, 5*time.Second)
	require.Equal(t, protocol.CodeForbidden, f.Code, f.Message)
	require.Equal(t, "m1", f.ID)
	require.Contains(t, f.Message, "alice")
	// All or nothing: one stranger among chat partners refuses the frame.
	bob := n.Dial(t, "bob")
	subscribePresence(t, bob, "b1", "alice", "mallory")
	f = next(t, bob, protocol.FrameError, 5*time.Second)
	require.Equal(t, protocol.CodeForbidden, f.Code)
	require.Contains(t, f.Message, "mallory")
	n.Dial(t, "alice")
	noFrame(t, mallory, 500*time.Millisecond, func(f *protocol.Frame) bool { return f.Type == protocol.FramePresenceUpdate })
	noFrame(t, bob, 100*time.Millisecond, func(f *protocol.Frame) bool { return f.Type == protocol.FramePresenceUpdate })

	// REST: the same rule.
	status, _, body := getPresence(t, n, "mallory", "alice")
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, body, `"code":"forbidden"`)
	status, _, body = getPresence(t, n, "bob", "alice")
	require.Equal(t, http.StatusOK, status, body)
	status, _, body = getPresence(t, n, "mallory", "mallory")
	require.Equal(t, http.StatusOK, status, "your own presence: %s", body)
	// A service may read anyone's.
	code, body2 := n.Do(t, "GET", "/api/v1/users/alice/presence", n.ServiceToken(t, "backend"), nil)
	require.Equal(t, http.StatusOK, code, string(body2))

	// Once they share a chat, mallory may watch alice.
	n.CreateChat(t, "alice", "direct", "", "mallory")
	subscribePresence(t, mallory, "m2", "alice")
	f = presenceOf(t, mallory, "alice", "online", 5*time.Second)
	require.Equal(t, "m2", f.ID)
}

func TestPresenceHostileInput(t *testing.T) {
	cfg := presenceConfig(t)
	cfg.Gateway.Presence.MaxSubs = 3
	n := testutil.StartNatter(t, cfg)
	n.CreateChat(t, "alice", "group", "g", "bob", "carol", "dave", "erin")
	alice := n.Dial(t, "alice")
	ctx := ctxT(t, 30*time.Second)
	many := `"` + strings.Repeat(`u","`, 100) + `u"`
	frames := []struct {
		name  string
		frame string
		code  protocol.Code
	}{
		{"no userIds", `{"type":"presence_sub"}`, protocol.CodeBadRequest},
		{"empty userIds", `{"type":"presence_sub","userIds":[]}`, protocol.CodeBadRequest},
		{"userIds not a list", `{"type":"presence_sub","userIds":"bob"}`, protocol.CodeBadRequest},
		{"user id with dot", `{"type":"presence_sub","userIds":["bob.>"]}`, protocol.CodeInvalidID},
		{"user id wildcard", `{"type":"presence_sub","userIds":["*"]}`, protocol.CodeInvalidID},
		{"user id too long", `{"type":"presence_sub","userIds":["` + strings.Repeat("b", 65) + `"]}`, protocol.CodeInvalidID},
		{"too many in one frame", `{"type":"presence_sub","userIds":[` + many + `]}`, protocol.CodeTooLarge},
		{"over the per-connection cap", `{"type":"presence_sub","userIds":["bob","carol","dave","erin"]}`, protocol.CodeTooLarge},
	}
	for _, tc := range frames {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, alice.WriteRaw(ctx, []byte(tc.frame)))
			f := next(t, alice, protocol.FrameError, 5*time.Second)
			require.Equal(t, tc.code, f.Code, f.Message)
			require.NoError(t, alice.Ping(ctx), "the connection stays open")
		})
	}
	t.Run("remove then subscribe again within the cap", func(t *testing.T) {
		subscribePresence(t, alice, "x", "bob", "carol", "dave")
		for range 3 {
			next(t, alice, protocol.FramePresenceUpdate, 5*time.Second)
		}
		require.NoError(t, alice.Frame(ctx, &protocol.Frame{Type: protocol.FramePresenceSub, UserIDs: []string{"dave"}, Remove: true}))
		subscribePresence(t, alice, "y", "erin")
		f := next(t, alice, protocol.FramePresenceUpdate, 5*time.Second)
		require.Equal(t, "erin", f.UserID)
	})

	rest := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"get without token", "GET", "/api/v1/users/bob/presence", "", nil, 401, "unauthorized"},
		{"put without token", "PUT", "/api/v1/users/alice/presence", "", `{"status":"away"}`, 401, "unauthorized"},
		{"get invalid id", "GET", "/api/v1/users/b.b/presence", n.Token(t, "alice"), nil, 400, "invalid_id"},
		{"put someone else's", "PUT", "/api/v1/users/bob/presence", n.Token(t, "alice"), `{"status":"away"}`, 403, "forbidden"},
		{"put unknown status", "PUT", "/api/v1/users/alice/presence", n.Token(t, "alice"), `{"status":"busy"}`, 400, "bad_request"},
		{"put empty status", "PUT", "/api/v1/users/alice/presence", n.Token(t, "alice"), `{}`, 400, "bad_request"},
		{"put malformed", "PUT", "/api/v1/users/alice/presence", n.Token(t, "alice"), `{"status":`, 400, "bad_request"},
		{"put unknown field", "PUT", "/api/v1/users/alice/presence", n.Token(t, "alice"), `{"status":"away","lastSeen":1}`, 400, "bad_request"},
		{"put oversize", "PUT", "/api/v1/users/alice/presence", n.Token(t, "alice"), `{"status":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large"},
	}
	for _, tc := range rest {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.Do(t, tc.method, tc.path, tc.token, tc.body)
			require.Equal(t, tc.status, status, string(body))
			require.Contains(t, string(body), `"code":"`+tc.code+`"`)
		})
	}
	// None of it changed alice's presence.
	_, p, _ := getPresence(t, n, "alice", "alice")
	require.Equal(t, "online", p.Set)
}

func TestTypingReachesMembersAndStopsByItself(t *testing.T) {
	cfg := presenceConfig(t)
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob", "carol")
	alice, alice2, bob, carol := n.Dial(t, "alice"), n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "carol")
	ctx := ctxT(t, 30*time.Second)
	typing := func(state string) {
		require.NoError(t, alice.Frame(ctx, &protocol.Frame{Type: protocol.FrameTyping, ChatID: chat, State: state}))
	}
	isTyping := func(state string) func(*protocol.Frame) bool {
		return func(f *protocol.Frame) bool {
			return f.Type == protocol.FrameTypingIndicator && f.ChatID == chat && f.UserID == "alice" && f.State == state
		}
	}

	// A burst of starts: one indicator (throttled), then stop by itself after the
	// expiry without a refresh.
	start := time.Now()
	for range 5 {
		typing("start")
	}
	for _, c := range []*client.Conn{bob, carol} {
		nextFrame(t, c, 5*time.Second, "typing start", isTyping("start"))
	}
	for _, c := range []*client.Conn{bob, carol} {
		nextFrame(t, c, 5*time.Second, "typing stop", isTyping("stop"))
	}
	require.GreaterOrEqual(t, time.Since(start), cfg.Gateway.Typing.Expiry, "stop comes after the expiry, not before")
	noFrame(t, alice2, 200*time.Millisecond, func(f *protocol.Frame) bool { return f.Type == protocol.FrameTypingIndicator })

	// Start then stop: both arrive, in order, and nothing more.
	typing("start")
	nextFrame(t, bob, 5*time.Second, "typing start", isTyping("start"))
	typing("stop")
	nextFrame(t, bob, 5*time.Second, "typing stop", isTyping("stop"))
	noFrame(t, bob, cfg.Gateway.Typing.Expiry+300*time.Millisecond, func(f *protocol.Frame) bool { return f.Type == protocol.FrameTypingIndicator })

	// Refreshing keeps it alive past the expiry; the server stops it once refreshes end.
	typing("start")
	nextFrame(t, bob, 5*time.Second, "typing start", isTyping("start"))
	for range 4 {
		time.Sleep(cfg.Gateway.Typing.Expiry / 2) // the client's refresh cadence
		typing("start")
	}
	lastRefresh := time.Now()
	stop := nextFrame(t, bob, 5*time.Second, "typing stop", func(f *protocol.Frame) bool {
		return f.Type == protocol.FrameTypingIndicator && f.State == "stop"
	})
	require.Equal(t, "alice", stop.UserID)
	require.GreaterOrEqual(t, time.Since(lastRefresh), cfg.Gateway.Typing.Expiry-100*time.Millisecond,
		"no stop while refreshed: it comes an expiry after the last refresh")

	// Never persisted: the chat has no history.
	require.Empty(t, history(t, n, "bob", chat, "").Messages)
}

func TestTypingRefusedAndDropped(t *testing.T) {
	cfg := presenceConfig(t)
	cfg.Gateway.Typing.MaxMembers = 2
	n := testutil.StartNatter(t, cfg)
	dm := n.CreateChat(t, "alice", "direct", "", "bob")
	big := n.CreateChat(t, "alice", "group", "big", "bob", "carol")
	alice, bob, mallory := n.Dial(t, "alice"), n.Dial(t, "bob"), n.Dial(t, "mallory")
	ctx := ctxT(t, 30*time.Second)
	cases := []struct {
		name  string
		frame string
		code  protocol.Code
	}{
		{"no chat", `{"type":"typing","state":"start"}`, protocol.CodeInvalidID},
		{"chat id with wildcard", `{"type":"typing","chatId":"a.*","state":"start"}`, protocol.CodeInvalidID},
		{"no state", `{"type":"typing","chatId":"` + dm + `"}`, protocol.CodeBadRequest},
		{"unknown state", `{"type":"typing","chatId":"` + dm + `","state":"paused"}`, protocol.CodeBadRequest},
		{"state not a string", `{"type":"typing","chatId":"` + dm + `","state":1}`, protocol.CodeBadRequest},
		{"not a member", `{"type":"typing","chatId":"` + dm + `","state":"start"}`, protocol.CodeNotMember},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, mallory.WriteRaw(ctx, []byte(tc.frame)))
			f := next(t, mallory, protocol.FrameError, 5*time.Second)
			require.Equal(t, tc.code, f.Code, f.Message)
			require.NoError(t, mallory.Ping(ctx))
		})
	}
	// A chat above typing-max-members drops typing silently; a small one delivers.
	require.NoError(t, alice.Frame(ctx, &protocol.Frame{Type: protocol.FrameTyping, ChatID: big, State: "start"}))
	require.NoError(t, alice.Frame(ctx, &protocol.Frame{Type: protocol.FrameTyping, ChatID: dm, State: "start"}))
	f := next(t, bob, protocol.FrameTypingIndicator, 5*time.Second)
	require.Equal(t, dm, f.ChatID, "the large chat's typing was dropped")
	noFrame(t, alice, 300*time.Millisecond, func(f *protocol.Frame) bool { return f.Type == protocol.FrameError })
	noFrame(t, bob, 300*time.Millisecond, func(f *protocol.Frame) bool {
		return f.Type == protocol.FrameTypingIndicator && f.ChatID == big
	})
}

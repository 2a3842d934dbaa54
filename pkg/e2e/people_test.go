package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/app"
	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Profiles, blocking and consent, on both stores and both transports.

// bothStores runs fn on a natter config on SQLite and on Cassandra (skipped, saying
// how to run it, without a node).
func bothStores(t *testing.T, base func(*testing.T) *app.Config, fn func(t *testing.T, cfg *app.Config)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, base(t)) })
	t.Run("cassandra", func(t *testing.T) {
		hosts := cassandraHosts(t)
		cfg := cassandraConfig(t, hosts)
		b := base(t)
		cfg.Gateway, cfg.Presence, cfg.Notifier = b.Gateway, b.Presence, b.Notifier
		fn(t, cfg)
	})
}

// consentConfig asks for consent to group adds (the production default).
func consentConfig(t *testing.T) *app.Config {
	c := presenceConfig(t)
	c.Gateway.Consent.DirectAdds = false
	return c
}

type profileResp struct {
	UserID      string `json:"userId"`
	DisplayName string `json:"displayName"`
	Avatar      string `json:"avatar"`
	GroupAdds   string `json:"groupAdds"`
}

func TestProfiles(t *testing.T) {
	bothStores(t, func(t *testing.T) *app.Config { return testutil.Config(t) }, func(t *testing.T, cfg *app.Config) {
		n := testutil.StartNatter(t, cfg)
		chat := n.CreateChat(t, "alice", "group", "g", "bob")

		var own profileResp
		status, body := call(t, n, "GET", "/api/v1/profile", "alice", nil, &own)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, profileResp{UserID: "alice"}, own, "no profile yet: the user ID only")

		// An avatar is an image the user uploaded.
		status, body = upload(t, n, "alice", "me.png", pngBytes(t, 2000))
		require.Equal(t, http.StatusCreated, status, string(body))
		var img struct{ ID string }
		require.NoError(t, json.Unmarshal(body, &img))
		status, body = upload(t, n, "alice", "notes.txt", []byte("plain text, not an image"))
		require.Equal(t, http.StatusCreated, status, string(body))
		var txt struct{ ID string }
		require.NoError(t, json.Unmarshal(body, &txt))
		status, body = upload(t, n, "carol", "c.png", pngBytes(t, 500))
		require.Equal(t, http.StatusCreated, status, string(body))
		var carols struct{ ID string }
		require.NoError(t, json.Unmarshal(body, &carols))

		status, body = call(t, n, "PUT", "/api/v1/profile", "alice",
			map[string]any{"displayName": "  Alice Ünïcødé 🐈 ", "avatar": img.ID, "groupAdds": "contacts"}, &own)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, profileResp{UserID: "alice", DisplayName: "Alice Ünïcødé 🐈", Avatar: img.ID, GroupAdds: "contacts"}, own)

		// bob shares a chat with alice: he reads her public profile (no settings)
		// and downloads her avatar.
		var pub map[string]any
		status, body = call(t, n, "GET", "/api/v1/users/alice/profile", "bob", nil, &pub)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, map[string]any{"userId": "alice", "displayName": "Alice Ünïcødé 🐈", "avatar": img.ID}, pub)
		resp, _ := download(t, n, "bob", img.ID, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		// carol shares nothing with alice: the profile does not exist for her, like
		// a user who never was, and the avatar is not hers to download.
		status, strangers := call(t, n, "GET", "/api/v1/users/alice/profile", "carol", nil, nil)
		requireRefused(t, status, strangers, 404, protocol.CodeNotFound)
		status, nobody := call(t, n, "GET", "/api/v1/users/nobody-at-all/profile", "carol", nil, nil)
		requireRefused(t, status, nobody, 404, protocol.CodeNotFound)
		require.Equal(t, strings.Replace(string(strangers), "alice", "X", 1), strings.Replace(string(nobody), "nobody-at-all", "X", 1),
			"a hidden profile and a missing user answer alike")
		resp, _ = download(t, n, "carol", img.ID, nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		// A service reads any profile.
		status, body = n.Do(t, "GET", "/api/v1/users/alice/profile", n.ServiceToken(t, "directory"), nil)
		require.Equal(t, http.StatusOK, status, string(body))

		// The batch form: a chat's members, paged by user ID.
		require.Equal(t, http.StatusOK, func() int {
			s, _ := call(t, n, "PUT", "/api/v1/profile", "bob", map[string]any{"displayName": "Bob"}, nil)
			return s
		}())
		var page struct {
			Profiles []profileResp `json:"profiles"`
			HasMore  bool          `json:"hasMore"`
			Cursor   string        `json:"cursor"`
		}
		status, body = call(t, n, "GET", "/api/v1/chats/"+chat+"/profiles?limit=1", "bob", nil, &page)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, []profileResp{{UserID: "alice", DisplayName: "Alice Ünïcødé 🐈", Avatar: img.ID}}, page.Profiles)
		require.True(t, page.HasMore)
		cursor := page.Cursor
		page.Profiles = nil
		status, body = call(t, n, "GET", "/api/v1/chats/"+chat+"/profiles?limit=1&after="+cursor, "bob", nil, &page)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, []profileResp{{UserID: "bob", DisplayName: "Bob"}}, page.Profiles)
		require.False(t, page.HasMore)

		for _, tc := range []struct {
			name, method, path, user string
			body                     any
			status                   int
			code                     protocol.Code
		}{
			{"no token", "GET", "/api/v1/profile", "", nil, 401, protocol.CodeUnauthorized},
			{"put without token", "PUT", "/api/v1/profile", "", map[string]any{"displayName": "x"}, 401, protocol.CodeUnauthorized},
			{"other's without token", "GET", "/api/v1/users/alice/profile", "", nil, 401, protocol.CodeUnauthorized},
			{"malformed JSON", "PUT", "/api/v1/profile", "alice", `{"displayName":`, 400, protocol.CodeBadRequest},
			{"unknown field (no other identity)", "PUT", "/api/v1/profile", "alice", map[string]any{"displayName": "x", "userId": "bob"}, 400, protocol.CodeBadRequest},
			{"name too long", "PUT", "/api/v1/profile", "alice", map[string]any{"displayName": strings.Repeat("n", store.MaxDisplayName+1)}, 413, protocol.CodeTooLarge},
			{"control character", "PUT", "/api/v1/profile", "alice", map[string]any{"displayName": "a\u0007b"}, 400, protocol.CodeBadRequest},
			{"bidi override", "PUT", "/api/v1/profile", "alice", map[string]any{"displayName": "evil\u202Egnp.exe"}, 400, protocol.CodeBadRequest},
			{"zero-width joiner", "PUT", "/api/v1/profile", "alice", map[string]any{"displayName": "adm\u200Din"}, 400, protocol.CodeBadRequest},
			{"bad avatar ID", "PUT", "/api/v1/profile", "alice", map[string]any{"avatar": "../../etc/passwd"}, 400, protocol.CodeBadRequest},
			{"unknown avatar", "PUT", "/api/v1/profile", "alice", map[string]any{"avatar": "nosuchmedia"}, 404, protocol.CodeNotFound},
			{"avatar not an image", "PUT", "/api/v1/profile", "alice", map[string]any{"avatar": txt.ID}, 400, protocol.CodeBadRequest},
			{"another's upload as avatar", "PUT", "/api/v1/profile", "alice", map[string]any{"avatar": carols.ID}, 403, protocol.CodeForbidden},
			{"unknown groupAdds", "PUT", "/api/v1/profile", "alice", map[string]any{"groupAdds": "nobody"}, 400, protocol.CodeBadRequest},
			{"oversize body", "PUT", "/api/v1/profile", "alice", map[string]any{"displayName": strings.Repeat("x", 70<<10)}, 413, protocol.CodeTooLarge},
			{"bad user ID", "GET", "/api/v1/users/a.b/profile", "alice", nil, 400, protocol.CodeInvalidID},
			{"chat profiles of a non-member", "GET", "/api/v1/chats/" + chat + "/profiles", "carol", nil, 403, protocol.CodeNotMember},
			{"chat profiles bad limit", "GET", "/api/v1/chats/" + chat + "/profiles?limit=0", "bob", nil, 400, protocol.CodeBadRequest},
			{"chat profiles bad cursor", "GET", "/api/v1/chats/" + chat + "/profiles?after=a.b", "bob", nil, 400, protocol.CodeBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, body := call(t, n, tc.method, tc.path, tc.user, tc.body, nil)
				requireRefused(t, status, body, tc.status, tc.code)
			})
		}
		status, body = n.Do(t, "PUT", "/api/v1/profile", n.ServiceToken(t, "directory"), map[string]any{"displayName": "x"})
		requireRefused(t, status, body, 403, protocol.CodeForbidden)
		status, body = call(t, n, "GET", "/api/v1/profile", "alice", nil, &own)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "Alice Ünïcødé 🐈", own.DisplayName, "refused requests changed nothing")
		require.Equal(t, img.ID, own.Avatar)
	})
}

type blockList struct {
	Blocks []struct {
		UserID    string    `json:"userId"`
		CreatedAt time.Time `json:"createdAt"`
	} `json:"blocks"`
}

func blocked(t *testing.T, n *testutil.Natter, user string) []string {
	t.Helper()
	var b blockList
	status, body := call(t, n, "GET", "/api/v1/blocks", user, nil, &b)
	require.Equal(t, http.StatusOK, status, string(body))
	out := []string{}
	for _, x := range b.Blocks {
		out = append(out, x.UserID)
	}
	return out
}

// TestBlocking: alice blocks bob. Over each transport bob can no longer send into
// their direct chat, open one, add alice to a group, or see her presence or typing;
// nor can a backend post as bob into the direct chat. Unblocking undoes it.
func TestBlocking(t *testing.T) {
	bothStores(t, presenceConfig, func(t *testing.T, cfg *app.Config) {
		n := testutil.StartNatter(t, cfg)
		dm := n.CreateChat(t, "alice", "direct", "", "bob")
		group := n.CreateChat(t, "carol", "group", "g", "alice", "bob")

		require.Equal(t, []string{}, blocked(t, n, "alice"))
		status, body := call(t, n, "POST", "/api/v1/blocks/bob", "alice", nil, nil)
		require.Equal(t, http.StatusCreated, status, string(body))
		status, body = call(t, n, "POST", "/api/v1/blocks/bob", "alice", nil, nil)
		require.Equal(t, http.StatusOK, status, "blocking again: "+string(body))
		require.Equal(t, []string{"bob"}, blocked(t, n, "alice"))
		require.Equal(t, []string{}, blocked(t, n, "bob"), "blocking is one way")

		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				alice, _ := tr.dial(t, n, "alice")
				bob, _ := tr.dial(t, n, "bob")
				carol, _ := tr.dial(t, n, "carol")
				// bob's send into the direct chat is refused, with the blocked code.
				mid := ids.New()
				bob.frame(t, &protocol.Frame{Type: protocol.FrameSend, ChatID: dm, MessageID: mid, Content: "hello?"})
				e := bob.next(t, protocol.FrameError)
				require.Equal(t, protocol.CodeBlocked, e.Code, "%+v", e)
				require.Equal(t, mid, e.MessageID)
				// In the group bob still talks; alice still hears him there.
				bob.frame(t, &protocol.Frame{Type: protocol.FrameSend, ChatID: group, MessageID: ids.New(), Content: "in the group"})
				// (An earlier transport's last message may still reach alice's new
				// connection first: skip it.)
				f := alice.next(t, protocol.FrameMessage)
				for f.Content == "marker" {
					f = alice.next(t, protocol.FrameMessage)
				}
				require.Equal(t, "in the group", f.Content)
				// alice types in the group: carol sees it, bob does not.
				alice.frame(t, &protocol.Frame{Type: protocol.FrameTyping, ChatID: group, State: "start"})
				ti := carol.next(t, protocol.FrameTypingIndicator)
				require.Equal(t, "alice", ti.UserID)
				// bob cannot watch alice's presence (the same answer as for a stranger).
				bob.frame(t, &protocol.Frame{Type: protocol.FramePresenceSub, ID: "p1", UserIDs: []string{"alice"}})
				e = bob.next(t, protocol.FrameError, protocol.FramePresenceUpdate, protocol.FrameTypingIndicator)
				require.Equal(t, protocol.FrameError, e.Type, "bob saw %+v", e)
				require.Equal(t, protocol.CodeForbidden, e.Code)
				// carol watches alice; her typing stop reaches carol, and still nothing
				// of alice's reached bob (his next frame is his own message's echo).
				carol.frame(t, &protocol.Frame{Type: protocol.FramePresenceSub, ID: "p2", UserIDs: []string{"alice"}})
				require.Equal(t, "alice", carol.next(t, protocol.FramePresenceUpdate).UserID)
				alice.frame(t, &protocol.Frame{Type: protocol.FrameTyping, ChatID: group, State: "stop"})
				require.Equal(t, "stop", carol.next(t, protocol.FrameTypingIndicator).State)
				bob.frame(t, &protocol.Frame{Type: protocol.FrameSend, ChatID: group, MessageID: "marker-" + tr.name, Content: "marker"})
				for {
					f := bob.next(t, protocol.FrameTypingIndicator, protocol.FramePresenceUpdate, protocol.FrameMessage)
					require.Equal(t, protocol.FrameMessage, f.Type, "bob saw alice: %+v", f)
					if f.MessageID == "marker-"+tr.name {
						break
					}
				}
			})
		}
		// REST: the post is refused at once; the direct chat cannot be opened again;
		// alice cannot be added to bob's groups.
		status, body = call(t, n, "POST", "/api/v1/chats/"+dm+"/messages", "bob", map[string]any{"content": "rest"}, nil)
		requireRefused(t, status, body, 403, protocol.CodeBlocked)
		status, body = call(t, n, "POST", "/api/v1/chats", "bob", map[string]any{"type": "direct", "members": []string{"alice"}}, nil)
		requireRefused(t, status, body, 403, protocol.CodeBlocked)
		status, body = call(t, n, "POST", "/api/v1/chats", "bob", map[string]any{"type": "group", "name": "x", "members": []string{"carol", "alice"}}, nil)
		requireRefused(t, status, body, 403, protocol.CodeBlocked)
		bobs := n.CreateChat(t, "bob", "group", "bob's", "carol")
		status, body = call(t, n, "POST", "/api/v1/chats/"+bobs+"/members", "bob", map[string]any{"userId": "alice"}, nil)
		requireRefused(t, status, body, 403, protocol.CodeBlocked)
		require.Equal(t, []string{"bob:admin", "carol:member"}, members(t, n, bobs, "bob"))
		status, _, _ = getPresence(t, n, "bob", "alice")
		require.Equal(t, http.StatusForbidden, status)
		// alice, the blocker, may still write to bob.
		status, body = call(t, n, "POST", "/api/v1/chats/"+dm+"/messages", "alice", map[string]any{"content": "I blocked you"}, nil)
		require.Equal(t, http.StatusAccepted, status, string(body))

		// A backend posting as bob into the direct chat: the sequencer refuses it,
		// and the publisher hears why.
		nc := n.ConnectNATS(t, natsutil.UserBackend, nil)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		pub, err := publish.New(js, n.Config.NATS.Prefix, "bridge")
		require.NoError(t, err)
		_, err = pub.Publish(ctxT(t, 10*time.Second), &protocol.Message{ChatID: dm, MessageID: "via-backend", SenderID: "bob",
			Content: "bridged", MessageType: protocol.TypeText})
		var refusal *protocol.Error
		require.ErrorAs(t, err, &refusal)
		require.Equal(t, protocol.CodeBlocked, refusal.Code)
		_, err = pub.Publish(ctxT(t, 10*time.Second), &protocol.Message{ChatID: dm, MessageID: "after-backend", SenderID: "alice",
			Content: "mine", MessageType: protocol.TypeText})
		require.NoError(t, err)
		var msgs []protocol.Message
		require.Eventually(t, func() bool {
			msgs, err = readAll(n.Store, dm)
			return err == nil && len(msgs) > 0 && msgs[len(msgs)-1].MessageID == "after-backend"
		}, 15*time.Second, 50*time.Millisecond)
		for _, m := range msgs {
			require.NotEqual(t, "bob", m.SenderID, "nothing of bob's is in the direct chat: %+v", m)
		}

		// Unblocked, bob writes again (within the caches' few seconds on other roles).
		status, body = call(t, n, "DELETE", "/api/v1/blocks/bob", "alice", nil, nil)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, []string{}, blocked(t, n, "alice"))
		// The sequencer's cache may still refuse for its TTL (2 s): post until one lands.
		require.Eventually(t, func() bool {
			status, body := call(t, n, "POST", "/api/v1/chats/"+dm+"/messages", "bob", map[string]any{"content": "friends again"}, nil)
			if status != http.StatusAccepted {
				requireRefused(t, status, body, 403, protocol.CodeBlocked)
			}
			return status == http.StatusAccepted
		}, 10*time.Second, 250*time.Millisecond, "the sequencer takes bob's messages again")
		require.Eventually(t, func() bool {
			msgs, err = readAll(n.Store, dm)
			return err == nil && len(msgs) > 0 && msgs[len(msgs)-1].SenderID == "bob"
		}, 10*time.Second, 50*time.Millisecond)

		for _, tc := range []struct {
			name, method, path, user string
			status                   int
			code                     protocol.Code
		}{
			{"no token", "POST", "/api/v1/blocks/bob", "", 401, protocol.CodeUnauthorized},
			{"list without token", "GET", "/api/v1/blocks", "", 401, protocol.CodeUnauthorized},
			{"unblock without token", "DELETE", "/api/v1/blocks/bob", "", 401, protocol.CodeUnauthorized},
			{"oneself", "POST", "/api/v1/blocks/alice", "alice", 400, protocol.CodeBadRequest},
			{"bad ID", "POST", "/api/v1/blocks/a.b", "alice", 400, protocol.CodeInvalidID},
			{"oversize ID", "POST", "/api/v1/blocks/" + strings.Repeat("u", 65), "alice", 400, protocol.CodeInvalidID},
			{"wildcard ID", "POST", "/api/v1/blocks/*", "alice", 400, protocol.CodeInvalidID},
			{"unblock someone not blocked", "DELETE", "/api/v1/blocks/carol", "alice", 404, protocol.CodeNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, body := call(t, n, tc.method, tc.path, tc.user, nil, nil)
				requireRefused(t, status, body, tc.status, tc.code)
			})
		}
		status, body = n.Do(t, "POST", "/api/v1/blocks/bob", n.ServiceToken(t, "svc"), nil)
		requireRefused(t, status, body, 403, protocol.CodeForbidden)
		require.Equal(t, []string{}, blocked(t, n, "alice"), "refused requests changed nothing")
	})
}

// TestBlockedSenderNotifiesNobody: a message from a user the recipient blocks
// causes no notification and is never the preview of one; the others' messages
// still notify. On both stores (the block is read through store.BlockCache).
func TestBlockedSenderNotifiesNobody(t *testing.T) {
	bothStores(t, presenceConfig, func(t *testing.T, cfg *app.Config) {
		rcv := newReceiver(t)
		rcv.configure(t, cfg)
		n := testutil.StartNatter(t, cfg)
		chat := n.CreateChat(t, "alice", "group", "Team", "bob", "carol")
		status, body := call(t, n, "POST", "/api/v1/blocks/alice", "bob", nil, nil)
		require.Equal(t, http.StatusCreated, status, string(body))
		sendBurst(t, n, "alice", chat, "m", 2)
		require.Eventually(t, func() bool { return len(rcv.notifications()) > 0 }, 10*time.Second, 20*time.Millisecond)
		time.Sleep(2 * cfg.Notifier.Window) // anything for bob would have come by now
		for _, note := range rcv.notifications() {
			require.Equal(t, "carol", note.UserID, "bob blocks alice: %+v", note)
		}

		// carol, then alice again, in about one window: bob hears of carol's
		// message, and his notification shows nothing of alice's (when alice's is
		// the window's last, its sender and content are left out).
		sendBurst(t, n, "carol", chat, "c", 1)
		sendBurst(t, n, "alice", chat, "late", 1)
		forBob := func() (out []notifier.Notification) {
			for _, note := range rcv.notifications() {
				if note.UserID == "bob" {
					out = append(out, note)
				}
			}
			return out
		}
		require.Eventually(t, func() bool { return len(forBob()) > 0 }, 10*time.Second, 20*time.Millisecond, "carol's message notifies bob")
		time.Sleep(2 * cfg.Notifier.Window)
		for _, note := range forBob() {
			require.NotEqual(t, "alice", note.LastMessage.SenderID, "bob's preview is never alice's: %+v", note)
			require.NotContains(t, note.LastMessage.Content, "late", "bob's preview is never alice's")
			if note.LastMessage.MessageID == "late1" {
				require.Empty(t, note.LastMessage.Content, "%+v", note)
			}
		}
	})
}

type invitationList struct {
	Invitations []struct {
		ChatID    string `json:"chatId"`
		ChatName  string `json:"chatName"`
		InvitedBy string `json:"invitedBy"`
		Role      string `json:"role"`
	} `json:"invitations"`
}

func invitations(t *testing.T, n *testutil.Natter, user string) []string {
	t.Helper()
	var l invitationList
	status, body := call(t, n, "GET", "/api/v1/invitations", user, nil, &l)
	require.Equal(t, http.StatusOK, status, string(body))
	out := []string{}
	for _, i := range l.Invitations {
		out = append(out, i.ChatName+"<"+i.InvitedBy+":"+i.Role)
	}
	return out
}

// TestConsentToGroupAdds: with consent asked (the default), an add by someone the
// user shares no chat with becomes an invitation, delivered live over each
// transport, which the user accepts or declines.
func TestConsentToGroupAdds(t *testing.T) {
	bothStores(t, consentConfig, func(t *testing.T, cfg *app.Config) {
		cfg.Gateway.Limits.REST.InviteRate, cfg.Gateway.Limits.REST.InviteBurst = 0.001, 6
		n := testutil.StartNatter(t, cfg)
		n.CreateChat(t, "alice", "direct", "", "bob") // alice and bob know each other
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				dave, _ := tr.dial(t, n, "dave-"+tr.name)
				// A group named with bob (a contact) and dave (a stranger): bob is in,
				// dave is invited and told at once.
				var created struct {
					ID      string         `json:"id"`
					Members []store.Member `json:"members"`
					Invited []string       `json:"invited"`
				}
				status, body := call(t, n, "POST", "/api/v1/chats", "alice",
					map[string]any{"type": "group", "name": "party " + tr.name, "members": []string{"bob", "dave-" + tr.name}}, &created)
				require.Equal(t, http.StatusCreated, status, string(body))
				require.Equal(t, []string{"dave-" + tr.name}, created.Invited)
				require.Len(t, created.Members, 2)
				f := dave.next(t, protocol.FrameInvitation)
				require.Equal(t, created.ID, f.ChatID)
				require.Equal(t, "alice", f.InvitedBy)
				require.Equal(t, "pending", f.State)
				require.Equal(t, []string{"party " + tr.name + "<alice:member"}, invitations(t, n, "dave-"+tr.name))
				// Not a member yet: the group is closed to dave.
				status, body = call(t, n, "GET", "/api/v1/chats/"+created.ID+"/messages", "dave-"+tr.name, nil, nil)
				requireRefused(t, status, body, 403, protocol.CodeNotMember)
				// dave accepts: he joins with a member_added event of his own.
				var ch change
				status, body = call(t, n, "POST", "/api/v1/invitations/"+created.ID+"/accept", "dave-"+tr.name, nil, &ch)
				require.Contains(t, []int{200, 202}, status, string(body))
				require.True(t, ch.Changed)
				m := dave.next(t, protocol.FrameMessage)
				ev := event(t, m)
				require.Equal(t, protocol.EventMemberAdded, ev.Event)
				require.Equal(t, "dave-"+tr.name, ev.UserID)
				require.Equal(t, []string{}, invitations(t, n, "dave-"+tr.name))
				require.Contains(t, members(t, n, created.ID, "alice"), "dave-"+tr.name+":member")

				// An add to an existing group: an invitation (202), declined.
				erin := "erin-" + tr.name
				erinConn, _ := tr.dial(t, n, erin)
				status, body = call(t, n, "POST", "/api/v1/chats/"+created.ID+"/members", "alice", map[string]any{"userId": erin, "role": "admin"}, nil)
				require.Equal(t, http.StatusAccepted, status, string(body))
				require.Contains(t, string(body), `"invitation"`)
				require.Equal(t, "admin", erinConn.next(t, protocol.FrameInvitation).Role)
				status, body = call(t, n, "POST", "/api/v1/invitations/"+created.ID+"/decline", erin, nil, nil)
				require.Equal(t, http.StatusOK, status, string(body))
				require.Equal(t, "declined", erinConn.next(t, protocol.FrameInvitation).State, "the other devices hear the answer")
				require.NotContains(t, members(t, n, created.ID, "alice"), erin+":admin")
				status, body = call(t, n, "POST", "/api/v1/invitations/"+created.ID+"/accept", erin, nil, nil)
				requireRefused(t, status, body, 404, protocol.CodeNotFound)
			})
		}

		// A user's setting "everyone" lets strangers add them directly.
		status, body := call(t, n, "PUT", "/api/v1/profile", "frank", map[string]any{"groupAdds": "everyone"}, nil)
		require.Equal(t, http.StatusOK, status, string(body))
		g := n.CreateChat(t, "alice", "group", "open", "frank")
		require.Equal(t, []string{"alice:admin", "frank:member"}, members(t, n, g, "alice"))
		// A block turns an invitation into a refusal, and drops pending ones.
		status, body = call(t, n, "POST", "/api/v1/chats/"+g+"/members", "alice", map[string]any{"userId": "gina"}, nil)
		require.Equal(t, http.StatusAccepted, status, string(body))
		require.Len(t, invitations(t, n, "gina"), 1)
		status, body = call(t, n, "POST", "/api/v1/blocks/alice", "gina", nil, nil)
		require.Equal(t, http.StatusCreated, status, string(body))
		require.Equal(t, []string{}, invitations(t, n, "gina"))
		status, body = call(t, n, "POST", "/api/v1/chats/"+g+"/members", "alice", map[string]any{"userId": "gina"}, nil)
		requireRefused(t, status, body, 403, protocol.CodeBlocked)
		// A service (chats:admin) adds directly.
		svc := n.ScopedServiceToken(t, "provisioning", protocol.ScopeChatsAdmin)
		status, body = n.Do(t, "POST", "/api/v1/chats/"+g+"/members", svc, map[string]any{"userId": "hank"})
		require.Contains(t, []int{201, 202}, status, string(body))
		require.NotContains(t, string(body), `"invitation"`)

		// Invitations are rate-limited per inviter (burst 6: 2 per transport and
		// gina's were used).
		status, body = call(t, n, "POST", "/api/v1/chats/"+g+"/members", "alice", map[string]any{"userId": "ivan"}, nil)
		require.Equal(t, http.StatusAccepted, status, string(body))
		status, body = call(t, n, "POST", "/api/v1/chats/"+g+"/members", "alice", map[string]any{"userId": "judy"}, nil)
		requireRefused(t, status, body, 429, protocol.CodeRateLimited)
		require.Equal(t, []string{}, invitations(t, n, "judy"))

		for _, tc := range []struct {
			name, method, path, user string
			status                   int
			code                     protocol.Code
		}{
			{"list without token", "GET", "/api/v1/invitations", "", 401, protocol.CodeUnauthorized},
			{"accept without token", "POST", "/api/v1/invitations/" + g + "/accept", "", 401, protocol.CodeUnauthorized},
			{"accept another's invitation", "POST", "/api/v1/invitations/" + g + "/accept", "judy", 404, protocol.CodeNotFound},
			{"decline nothing", "POST", "/api/v1/invitations/" + g + "/decline", "alice", 404, protocol.CodeNotFound},
			{"bad chat ID", "POST", "/api/v1/invitations/a.b/accept", "ivan", 400, protocol.CodeInvalidID},
			{"oversize chat ID", "POST", "/api/v1/invitations/" + strings.Repeat("c", 65) + "/accept", "ivan", 400, protocol.CodeInvalidID},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, body := call(t, n, tc.method, tc.path, tc.user, nil, nil)
				requireRefused(t, status, body, tc.status, tc.code)
			})
		}
		status, body = n.Do(t, "GET", "/api/v1/invitations", n.ServiceToken(t, "svc"), nil)
		requireRefused(t, status, body, 403, protocol.CodeForbidden)
		require.Len(t, invitations(t, n, "ivan"), 1, "refused requests changed nothing")
	})
}

// TestGoSDKPeople drives profiles, blocks and invitations through pkg/client.
func TestGoSDKPeople(t *testing.T) {
	n := testutil.StartNatter(t, consentConfig(t))
	people := func(user string) *client.People {
		return &client.People{BaseURL: n.HTTPURL(), Token: func(context.Context) (string, error) { return n.Token(t, user), nil }}
	}
	ctx := ctxT(t, 30*time.Second)
	alice, bob := people("alice"), people("bob")
	p, err := alice.SetProfile(ctx, "Alice", "", "")
	require.NoError(t, err)
	require.Equal(t, "Alice", p.Name())
	_, err = alice.SetProfile(ctx, "bad\u202Ename", "", "")
	var pe *protocol.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, protocol.CodeBadRequest, pe.Code)

	// bob is a stranger to alice: her profile does not exist for him, and her add
	// is an invitation that reaches his connection.
	_, err = bob.UserProfile(ctx, "alice")
	require.ErrorAs(t, err, &pe)
	require.Equal(t, protocol.CodeNotFound, pe.Code)
	conn := n.Dial(t, "bob")
	chat := n.CreateChat(t, "alice", "group", "club")
	status, body := call(t, n, "POST", "/api/v1/chats/"+chat+"/members", "alice", map[string]any{"userId": "bob"}, nil)
	require.Equal(t, http.StatusAccepted, status, string(body))
	f := next(t, conn, protocol.FrameInvitation, 10*time.Second)
	require.Equal(t, chat, f.ChatID)
	invs, err := bob.Invitations(ctx)
	require.NoError(t, err)
	require.Len(t, invs, 1)
	require.Equal(t, "club", invs[0].ChatName)
	require.NoError(t, bob.Accept(ctx, chat))
	ps, err := bob.ChatProfiles(ctx, chat)
	require.NoError(t, err)
	require.Equal(t, []string{"Alice", "bob"}, []string{ps[0].Name(), ps[1].Name()})
	pa, err := bob.UserProfile(ctx, "alice")
	require.NoError(t, err, "sharing a chat now")
	require.Equal(t, "Alice", pa.DisplayName)

	require.NoError(t, bob.Block(ctx, "alice"))
	bs, err := bob.Blocks(ctx)
	require.NoError(t, err)
	require.Equal(t, "alice", bs[0].UserID)
	status, body = call(t, n, "POST", "/api/v1/chats", "alice", map[string]any{"type": "direct", "members": []string{"bob"}}, nil)
	requireRefused(t, status, body, 403, protocol.CodeBlocked)
	require.NoError(t, bob.Unblock(ctx, "alice"))
	err = bob.Unblock(ctx, "alice")
	require.ErrorAs(t, err, &pe)
	require.Equal(t, protocol.CodeNotFound, pe.Code)
	require.ErrorAs(t, bob.Decline(ctx, chat), &pe, "the invitation is spent")
}

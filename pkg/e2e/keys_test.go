package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

func k64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func oneTimeKeys(from, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"id": from + i, "key": k64(fmt.Sprintf("otk-%d", from+i))}
	}
	return out
}

func deviceKeysBody(identity string, otks []map[string]any) map[string]any {
	return map[string]any{"identityKey": k64(identity),
		"signedPreKey": map[string]any{"id": 1, "key": k64("spk-" + identity), "signature": k64("sig-" + identity)},
		"oneTimeKeys":  otks}
}

type claimedKeys struct {
	UserID  string `json:"userId"`
	Devices []struct {
		DeviceID     string        `json:"deviceId"`
		IdentityKey  string        `json:"identityKey"`
		SignedPreKey store.PreKey  `json:"signedPreKey"`
		OneTimeKey   *store.PreKey `json:"oneTimeKey"`
	} `json:"devices"`
}

func claim(t *testing.T, n *testutil.Natter, as, of string) claimedKeys {
	t.Helper()
	var c claimedKeys
	status, body := call(t, n, "GET", "/api/v1/keys/users/"+of, as, nil, &c)
	require.Equal(t, http.StatusOK, status, string(body))
	return c
}

// nextKeyEvent returns the next system message of c carrying a key event.
func nextKeyEvent(t *testing.T, c *client.Conn) (string, protocol.SystemEvent) {
	t.Helper()
	var ev protocol.SystemEvent
	f := nextFrame(t, c, 15*time.Second, "a key event", func(f *protocol.Frame) bool {
		if f.Type != protocol.FrameMessage || f.MessageType != protocol.TypeSystem {
			return false
		}
		ev = protocol.SystemEvent{}
		return json.Unmarshal(f.Meta, &ev) == nil && strings.HasPrefix(ev.Event, "device_")
	})
	return f.ChatID, ev
}

func TestKeyDirectory(t *testing.T) {
	keyDirectory(t, testutil.StartNatter(t, testutil.Config(t)))
}

func TestCassandraKeyDirectory(t *testing.T) {
	keyDirectory(t, testutil.StartNatter(t, cassandraConfig(t, cassandraHosts(t))))
}

// keyDirectory drives the key directory through REST and watches the key events
// over WebSocket: publication, claims (each one-time key once), access of
// strangers, key changes and revocation announced in every encrypted chat of the
// user (and in no plain chat).
func keyDirectory(t *testing.T, n *testutil.Natter) {
	direct := createEncrypted(t, n, "alice", "direct", "bob").ID
	group := createEncrypted(t, n, "alice", "group", "bob", "dave").ID
	plain := n.CreateChat(t, "alice", "group", "plain", "bob", "erin")
	bob, dave, erin := n.Dial(t, "bob"), n.Dial(t, "dave"), n.Dial(t, "erin")

	var put struct {
		DeviceID    string `json:"deviceId"`
		OneTimeKeys int    `json:"oneTimeKeys"`
	}
	status, body := call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody("id-1", oneTimeKeys(1, 3)), &put)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "phone", put.DeviceID)
	require.Equal(t, 3, put.OneTimeKeys)
	// Announced, in order, in each of alice's encrypted chats: bob is in both.
	got := map[string]protocol.SystemEvent{}
	for range 2 {
		chat, ev := nextKeyEvent(t, bob)
		got[chat] = ev
	}
	want := protocol.SystemEvent{Event: protocol.EventDeviceKeysChanged, UserID: "alice", DeviceID: "phone"}
	require.Equal(t, map[string]protocol.SystemEvent{direct: want, group: want}, got)
	chat, ev := nextKeyEvent(t, dave)
	require.Equal(t, group, chat)
	require.Equal(t, want, ev)
	// A plain chat hears nothing of keys: its next message is erin's own.
	_, err := erin.Send(context.Background(), plain, "", "after the key change")
	require.NoError(t, err)
	f := nextFrame(t, erin, 15*time.Second, "a message", func(f *protocol.Frame) bool { return f.Type == protocol.FrameMessage })
	require.Equal(t, "after the key change", f.Content, "no key event in a chat that is not encrypted")

	// Claims hand out each one-time key once, then bundles without one.
	c := claim(t, n, "bob", "alice")
	require.Equal(t, "alice", c.UserID)
	require.Len(t, c.Devices, 1)
	require.Equal(t, k64("id-1"), c.Devices[0].IdentityKey)
	require.Equal(t, store.PreKey{ID: 1, Key: k64("spk-id-1"), Signature: k64("sig-id-1")}, c.Devices[0].SignedPreKey)
	require.Equal(t, &store.PreKey{ID: 1, Key: k64("otk-1")}, c.Devices[0].OneTimeKey)
	require.EqualValues(t, 2, claim(t, n, "dave", "alice").Devices[0].OneTimeKey.ID)
	require.EqualValues(t, 3, claim(t, n, "alice", "alice").Devices[0].OneTimeKey.ID, "one's own keys")
	var look claimedKeys
	status, body = call(t, n, "GET", "/api/v1/keys/users/alice?claim=false", "bob", nil, &look)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, k64("id-1"), look.Devices[0].IdentityKey)
	require.Nil(t, look.Devices[0].OneTimeKey, "a look-up takes no one-time key")
	require.Nil(t, claim(t, n, "bob", "alice").Devices[0].OneTimeKey)
	require.Empty(t, claim(t, n, "alice", "bob").Devices, "a partner without keys has no devices")

	var left struct {
		OneTimeKeys int `json:"oneTimeKeys"`
	}
	status, body = call(t, n, "POST", "/api/v1/keys/devices/phone/one-time-keys", "alice", map[string]any{"oneTimeKeys": oneTimeKeys(10, 2)}, &left)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, 2, left.OneTimeKeys)
	status, body = call(t, n, "POST", "/api/v1/keys/devices/phone/one-time-keys", "alice", map[string]any{"oneTimeKeys": []any{}}, &left)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, 2, left.OneTimeKeys, "an empty upload reads the count")

	// The same identity again is no key change; a new identity is; then a revocation.
	status, body = call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody("id-1", nil), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody("id-2", oneTimeKeys(20, 1)), &put)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, 1, put.OneTimeKeys, "the old identity's one-time keys are gone")
	_, ev = nextKeyEvent(t, dave)
	require.Equal(t, protocol.SystemEvent{Event: protocol.EventDeviceKeysChanged, UserID: "alice", DeviceID: "phone"}, ev,
		"the identity change is the next key event (the same identity again announced nothing)")
	require.Equal(t, k64("id-2"), claim(t, n, "bob", "alice").Devices[0].IdentityKey)

	status, body = call(t, n, "DELETE", "/api/v1/keys/devices/phone", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	_, ev = nextKeyEvent(t, dave)
	require.Equal(t, protocol.SystemEvent{Event: protocol.EventDeviceRevoked, UserID: "alice", DeviceID: "phone"}, ev)
	require.Empty(t, claim(t, n, "bob", "alice").Devices, "a revoked device is never claimed")
	status, body = call(t, n, "DELETE", "/api/v1/keys/devices/phone", "alice", nil, nil)
	requireRefused(t, status, body, 404, protocol.CodeNotFound)

	// History has the events too, as system messages in order with the chat.
	var hist struct {
		Messages []protocol.Message `json:"messages"`
	}
	status, body = call(t, n, "GET", "/api/v1/chats/"+group+"/messages?after=0", "dave", nil, &hist)
	require.Equal(t, http.StatusOK, status, string(body))
	var events []string
	for _, m := range hist.Messages {
		if m.MessageType == protocol.TypeSystem && strings.Contains(string(m.Meta), "device_") {
			require.Equal(t, "alice", m.SenderID)
			var e protocol.SystemEvent
			require.NoError(t, json.Unmarshal(m.Meta, &e))
			events = append(events, e.Event)
		}
	}
	require.Equal(t, []string{"device_keys_changed", "device_keys_changed", "device_revoked"}, events)
}

// Every key endpoint refuses malformed, oversize, unauthorised and hostile input
// with a stable code, and the refusals change nothing.
func TestKeyDirectoryRefusesBadInput(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	n.CreateChat(t, "alice", "direct", "", "bob")
	status, body := call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody("id-1", oneTimeKeys(1, 2)), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	withKeys := func(mut func(map[string]any)) map[string]any {
		b := deviceKeysBody("id-x", nil)
		mut(b)
		return b
	}
	huge := base64.StdEncoding.EncodeToString(make([]byte, store.MaxKeyBytes+1))
	svc := n.ServiceToken(t, "billing")
	for _, tc := range []struct {
		name, method, path, user string
		body                     any
		status                   int
		code                     protocol.Code
	}{
		{"no token", "PUT", "/api/v1/keys/devices/x", "", deviceKeysBody("a", nil), 401, protocol.CodeUnauthorized},
		{"claim without token", "GET", "/api/v1/keys/users/alice", "", nil, 401, protocol.CodeUnauthorized},
		{"malformed JSON", "PUT", "/api/v1/keys/devices/x", "alice", `{"identityKey":`, 400, protocol.CodeBadRequest},
		{"unknown field", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) { b["userId"] = "bob" }), 400, protocol.CodeBadRequest},
		{"bad device ID", "PUT", "/api/v1/keys/devices/a.b", "alice", deviceKeysBody("a", nil), 400, protocol.CodeInvalidID},
		{"no signed pre-key", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) { delete(b, "signedPreKey") }), 400, protocol.CodeBadRequest},
		{"no identity key", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) { b["identityKey"] = "" }), 400, protocol.CodeBadRequest},
		{"bad base64", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) { b["identityKey"] = "not base64!" }), 400, protocol.CodeBadRequest},
		{"identity key over 1 KiB", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) { b["identityKey"] = huge }), 400, protocol.CodeBadRequest},
		{"unsigned pre-key", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) {
			b["signedPreKey"] = map[string]any{"id": 1, "key": k64("k")}
		}), 400, protocol.CodeBadRequest},
		{"negative key id", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) {
			b["oneTimeKeys"] = []any{map[string]any{"id": -1, "key": k64("k")}}
		}), 400, protocol.CodeBadRequest},
		{"key id over 32 bits", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) {
			b["oneTimeKeys"] = []any{map[string]any{"id": 1 << 33, "key": k64("k")}}
		}), 400, protocol.CodeBadRequest},
		{"duplicate one-time key ids", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) {
			b["oneTimeKeys"] = []any{map[string]any{"id": 1, "key": k64("a")}, map[string]any{"id": 1, "key": k64("b")}}
		}), 400, protocol.CodeBadRequest},
		{"too many one-time keys", "PUT", "/api/v1/keys/devices/x", "alice", withKeys(func(b map[string]any) {
			b["oneTimeKeys"] = oneTimeKeys(0, store.MaxOneTimeKeys+1)
		}), 413, protocol.CodeTooLarge},
		{"supply over the cap", "POST", "/api/v1/keys/devices/phone/one-time-keys", "alice",
			map[string]any{"oneTimeKeys": oneTimeKeys(100, store.MaxOneTimeKeys-1)}, 413, protocol.CodeTooLarge},
		{"huge key list (body over the limit)", "POST", "/api/v1/keys/devices/phone/one-time-keys", "alice",
			map[string]any{"oneTimeKeys": oneTimeKeys(0, 5000)}, 413, protocol.CodeTooLarge},
		{"one-time keys of a device without keys", "POST", "/api/v1/keys/devices/ghost/one-time-keys", "alice",
			map[string]any{"oneTimeKeys": oneTimeKeys(1, 1)}, 404, protocol.CodeNotFound},
		{"one-time keys of another's device (by its ID)", "POST", "/api/v1/keys/devices/phone/one-time-keys", "bob",
			map[string]any{"oneTimeKeys": oneTimeKeys(1, 1)}, 404, protocol.CodeNotFound},
		{"revoke another's device (by its ID)", "DELETE", "/api/v1/keys/devices/phone", "bob", nil, 404, protocol.CodeNotFound},
		{"revoke bad ID", "DELETE", "/api/v1/keys/devices/a.b", "alice", nil, 400, protocol.CodeInvalidID},
		{"claim keys of a stranger", "GET", "/api/v1/keys/users/alice", "mallory", nil, 404, protocol.CodeNotFound},
		{"claim keys of nobody", "GET", "/api/v1/keys/users/nobody", "alice", nil, 404, protocol.CodeNotFound},
		{"claim bad user ID", "GET", "/api/v1/keys/users/a*b", "alice", nil, 400, protocol.CodeInvalidID},
		{"claim=maybe", "GET", "/api/v1/keys/users/alice?claim=maybe", "bob", nil, 400, protocol.CodeBadRequest},
		{"look up keys of a stranger", "GET", "/api/v1/keys/users/alice?claim=false", "mallory", nil, 404, protocol.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, n, tc.method, tc.path, tc.user, tc.body, nil)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	for _, ep := range []struct{ method, path string }{
		{"PUT", "/api/v1/keys/devices/x"}, {"POST", "/api/v1/keys/devices/x/one-time-keys"},
		{"DELETE", "/api/v1/keys/devices/x"}, {"GET", "/api/v1/keys/users/alice"},
	} {
		status, body := n.Do(t, ep.method, ep.path, svc, deviceKeysBody("s", nil))
		requireRefused(t, status, body, 403, protocol.CodeForbidden)
	}
	// Nothing changed: alice still has one device, with its two one-time keys.
	c := claim(t, n, "bob", "alice")
	require.Len(t, c.Devices, 1)
	require.Equal(t, k64("id-1"), c.Devices[0].IdentityKey)
	require.EqualValues(t, 1, c.Devices[0].OneTimeKey.ID)
	require.EqualValues(t, 2, claim(t, n, "bob", "alice").Devices[0].OneTimeKey.ID)
	require.Nil(t, claim(t, n, "bob", "alice").Devices[0].OneTimeKey)
}

// Concurrent claims through the API hand out each one-time key exactly once.
func TestKeyClaimsConcurrent(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	n.CreateChat(t, "alice", "group", "g", "bob", "carol", "dave")
	const keys = 30
	status, body := call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody("id", oneTimeKeys(1, keys)), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var mu sync.Mutex
	seen := map[uint32]int{}
	empty := 0
	var wg sync.WaitGroup
	for _, u := range []string{"bob", "carol", "dave", "bob", "carol", "dave"} {
		tok := n.Token(t, u)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 7 { // 42 claims for 30 keys
				status, body := n.Do(t, "GET", "/api/v1/keys/users/alice", tok, nil)
				var c claimedKeys
				if status != http.StatusOK || json.Unmarshal(body, &c) != nil || len(c.Devices) != 1 {
					t.Errorf("claim: %d %s", status, body)
					return
				}
				mu.Lock()
				if o := c.Devices[0].OneTimeKey; o != nil {
					seen[o.ID]++
				} else {
					empty++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, keys)
	for id, c := range seen {
		require.Equal(t, 1, c, "one-time key %d handed out %d times", id, c)
	}
	require.Equal(t, 42-keys, empty)
}

// Claims and key changes are rate limited per user.
func TestKeyDirectoryRateLimits(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Limits.REST.KeyClaimRate, cfg.Gateway.Limits.REST.KeyClaimBurst = 0.001, 2
	cfg.Gateway.Limits.REST.KeyChangeRate, cfg.Gateway.Limits.REST.KeyChangeBurst = 0.001, 2
	n := testutil.StartNatter(t, cfg)
	for i := range 2 {
		status, body := call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody(fmt.Sprint("id-", i), nil), nil)
		require.Equal(t, http.StatusOK, status, string(body))
	}
	status, body := call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody("id-1", oneTimeKeys(1, 5)), nil)
	require.Equal(t, http.StatusOK, status, "the same identity is no key change: not charged: %s", body)
	status, body = call(t, n, "PUT", "/api/v1/keys/devices/phone", "alice", deviceKeysBody("id-9", nil), nil)
	requireRefused(t, status, body, 429, protocol.CodeRateLimited)
	require.Equal(t, k64("id-1"), claim(t, n, "alice", "alice").Devices[0].IdentityKey, "a refused change is not stored")
	claim(t, n, "alice", "alice")
	status, body = call(t, n, "GET", "/api/v1/keys/users/alice", "alice", nil, nil)
	requireRefused(t, status, body, 429, protocol.CodeRateLimited)
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

type devicesBody struct {
	Devices []struct {
		DeviceID, Platform, Provider, Token string
		UpdatedAt                           time.Time
	} `json:"devices"`
}

func deviceTokens(t *testing.T, n *testutil.Natter, user string) []string {
	t.Helper()
	var b devicesBody
	status, body := call(t, n, "GET", "/api/v1/devices", user, nil, &b)
	require.Equal(t, http.StatusOK, status, string(body))
	out := []string{}
	for _, d := range b.Devices {
		out = append(out, d.DeviceID+"="+d.Provider+":"+d.Token)
	}
	return out
}

func TestPushDevicesREST(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	reg := func(user, id, provider, token string) (int, []byte) {
		return call(t, n, "POST", "/api/v1/devices", user,
			map[string]any{"deviceId": id, "platform": "android", "provider": provider, "token": token}, nil)
	}
	require.Equal(t, []string{}, deviceTokens(t, n, "alice"))
	status, body := reg("alice", "pixel", "fcm", "fcm-token-1")
	require.Equal(t, http.StatusOK, status, string(body))
	var d struct{ DeviceID, Platform, Provider, Token string }
	require.NoError(t, json.Unmarshal(body, &d))
	require.Equal(t, "pixel", d.DeviceID)
	status, _ = reg("alice", "pixel", "fcm", "fcm-token-2")
	require.Equal(t, http.StatusOK, status, "registering again replaces the token")
	status, _ = reg("alice", "laptop", "webpush", `{"endpoint":"https://push.example/abc","keys":{"p256dh":"x","auth":"y"}}`)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []string{`laptop=webpush:{"endpoint":"https://push.example/abc","keys":{"p256dh":"x","auth":"y"}}`, "pixel=fcm:fcm-token-2"},
		deviceTokens(t, n, "alice"))
	require.Equal(t, []string{}, deviceTokens(t, n, "bob"), "one's own devices only")

	// The phone changes hands: bob registers its token, alice's entry goes.
	status, _ = reg("bob", "phone", "fcm", "fcm-token-2")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []string{"phone=fcm:fcm-token-2"}, deviceTokens(t, n, "bob"))
	require.Len(t, deviceTokens(t, n, "alice"), 1)

	status, body = call(t, n, "DELETE", "/api/v1/devices/laptop", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, []string{}, deviceTokens(t, n, "alice"))

	for i := range store.MaxDevicesPerUser {
		status, body := reg("carol", fmt.Sprintf("c%d", i), "apns", fmt.Sprintf("apns-%d", i))
		require.Equal(t, http.StatusOK, status, string(body))
	}
	for _, tc := range []struct {
		name, method, path, user string
		body                     any
		status                   int
		code                     protocol.Code
	}{
		{"no token", "POST", "/api/v1/devices", "", map[string]any{"deviceId": "x", "platform": "ios", "provider": "apns", "token": "t"}, 401, protocol.CodeUnauthorized},
		{"list without token", "GET", "/api/v1/devices", "", nil, 401, protocol.CodeUnauthorized},
		{"delete without token", "DELETE", "/api/v1/devices/pixel", "", nil, 401, protocol.CodeUnauthorized},
		{"malformed JSON", "POST", "/api/v1/devices", "alice", `{"deviceId":`, 400, protocol.CodeBadRequest},
		{"unknown field", "POST", "/api/v1/devices", "alice", map[string]any{"deviceId": "x", "platform": "ios", "provider": "apns", "token": "t", "userId": "bob"}, 400, protocol.CodeBadRequest},
		{"bad device ID", "POST", "/api/v1/devices", "alice", map[string]any{"deviceId": "../x", "platform": "ios", "provider": "apns", "token": "t"}, 400, protocol.CodeInvalidID},
		{"no device ID", "POST", "/api/v1/devices", "alice", map[string]any{"platform": "ios", "provider": "apns", "token": "t"}, 400, protocol.CodeInvalidID},
		{"unknown platform", "POST", "/api/v1/devices", "alice", map[string]any{"deviceId": "x", "platform": "toaster", "provider": "apns", "token": "t"}, 400, protocol.CodeBadRequest},
		{"unknown provider", "POST", "/api/v1/devices", "alice", map[string]any{"deviceId": "x", "platform": "ios", "provider": "pigeon", "token": "t"}, 400, protocol.CodeBadRequest},
		{"empty token", "POST", "/api/v1/devices", "alice", map[string]any{"deviceId": "x", "platform": "ios", "provider": "apns", "token": ""}, 400, protocol.CodeBadRequest},
		{"control character in token", "POST", "/api/v1/devices", "alice", map[string]any{"deviceId": "x", "platform": "ios", "provider": "apns", "token": "a\u0000b"}, 400, protocol.CodeBadRequest},
		{"oversize token", "POST", "/api/v1/devices", "alice", map[string]any{"deviceId": "x", "platform": "ios", "provider": "apns", "token": strings.Repeat("t", store.MaxDeviceToken+1)}, 413, protocol.CodeTooLarge},
		{"too many devices", "POST", "/api/v1/devices", "carol", map[string]any{"deviceId": "one-more", "platform": "ios", "provider": "apns", "token": "t"}, 409, protocol.CodeConflict},
		{"delete unknown", "DELETE", "/api/v1/devices/nosuch", "alice", nil, 404, protocol.CodeNotFound},
		{"delete another's (by its ID)", "DELETE", "/api/v1/devices/phone", "alice", nil, 404, protocol.CodeNotFound},
		{"delete bad ID", "DELETE", "/api/v1/devices/a.b", "alice", nil, 400, protocol.CodeInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, n, tc.method, tc.path, tc.user, tc.body, nil)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	require.Equal(t, []string{"phone=fcm:fcm-token-2"}, deviceTokens(t, n, "bob"), "refused requests changed nothing")
	require.Equal(t, []string{}, deviceTokens(t, n, "alice"))

	svc := n.ServiceToken(t, "billing")
	status, body = n.Do(t, "GET", "/api/v1/devices", svc, nil)
	requireRefused(t, status, body, 403, protocol.CodeForbidden)
}

// A notification carries the user's devices; the push gateway's answer naming a
// token invalid removes that device, and only that user's.
func TestNotificationsCarryDevicesAndDropInvalidTokens(t *testing.T) {
	rcv := newReceiver(t)
	cfg := presenceConfig(t)
	rcv.configure(t, cfg)
	n := testutil.StartNatter(t, cfg)
	for _, d := range []struct{ user, id, provider, token string }{
		{"bob", "iphone", "apns", "apns-bob"}, {"bob", "ipad", "apns", "apns-bob-ipad"}, {"carol", "pixel", "fcm", "fcm-carol"},
	} {
		status, body := call(t, n, "POST", "/api/v1/devices", d.user,
			map[string]any{"deviceId": d.id, "platform": "ios", "provider": d.provider, "token": d.token}, nil)
		require.Equal(t, http.StatusOK, status, string(body))
	}
	rcv.set(func(r *receiver) {
		r.answer = func(nt notifier.Notification) []byte {
			// The gateway says bob's iPad token is dead, and (hostile or confused)
			// also carol's token, which is not in this notification.
			return []byte(`{"invalidTokens":[{"provider":"apns","token":"apns-bob-ipad"},{"provider":"fcm","token":"fcm-carol"}]}`)
		}
	})
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	sendBurst(t, n, "alice", chat, "m", 1)
	require.Eventually(t, func() bool { return len(rcv.notifications()) > 0 }, 15*time.Second, 20*time.Millisecond)
	note := rcv.notifications()[0]
	require.Equal(t, "bob", note.UserID)
	require.ElementsMatch(t, []notifier.Device{
		{DeviceID: "iphone", Platform: "ios", Provider: "apns", Token: "apns-bob"},
		{DeviceID: "ipad", Platform: "ios", Provider: "apns", Token: "apns-bob-ipad"},
	}, note.Devices)
	require.Eventually(t, func() bool {
		got := deviceTokens(t, n, "bob")
		return len(got) == 1 && got[0] == "iphone=apns:apns-bob"
	}, 10*time.Second, 20*time.Millisecond, "the invalid token's device is removed")
	require.Equal(t, []string{"pixel=fcm:fcm-carol"}, deviceTokens(t, n, "carol"), "another user's device is never removed by bob's notification")
}

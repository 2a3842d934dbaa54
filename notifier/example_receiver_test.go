package notifier_test

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/natter-chat/natter/notifier"
)

// A push gateway that receives Natter's webhook: it verifies the signature,
// deduplicates on the notification ID (delivery is at least once), sends one push
// per device with the provider's client, and answers the tokens the provider
// refused so that Natter removes those devices. docs/presence.md describes the
// contract; this example is compiled with the tests, so it stays in step with it.
func Example_pushGatewayReceiver() {
	secret, err := os.ReadFile("/etc/natter/webhook.secret")
	if err != nil {
		log.Fatal(err)
	}
	secret = []byte(strings.TrimSpace(string(secret)))
	seen := map[string]bool{} // use a store with a TTL in production

	// send pushes to one device through its provider (APNs, FCM, Web Push) and
	// reports whether the provider said the token is no longer valid.
	send := func(d notifier.Device, n notifier.Notification) (invalid bool, err error) {
		log.Printf("push to %s %s: %d unread in %s", d.Provider, d.DeviceID, n.Count, n.ChatID)
		return false, nil
	}

	http.HandleFunc("POST /natter", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := notifier.Verify(secret, body, r.Header.Get(notifier.SignatureHeader), time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized) // final: not retried
			return
		}
		var n notifier.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if seen[n.ID] {
			w.WriteHeader(http.StatusNoContent) // a redelivery: already pushed
			return
		}
		var answer notifier.Answer
		for _, d := range n.Devices {
			invalid, err := send(d, n)
			if err != nil {
				http.Error(w, "provider down", http.StatusServiceUnavailable) // retried with backoff
				return
			}
			if invalid {
				answer.InvalidTokens = append(answer.InvalidTokens, notifier.InvalidToken{Provider: d.Provider, Token: d.Token})
			}
		}
		seen[n.ID] = true
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8090", nil))
}

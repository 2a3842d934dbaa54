package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway/internal/kvwatch"
	"github.com/natter-chat/natter/gateway/transport"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// The deny list of erased accounts (docs/privacy.md, "Erasing an account"). It is
// the KV bucket natsutil.DeniedBucket, so it survives restarts and reaches every
// gateway: each one watches it, keeps the set in memory, has the token verifier
// refuse those subjects (auth.Verifier.SetRevoked: every WebSocket, SSE and REST
// request) and closes their live connections as an entry arrives. A gateway starts
// serving only once it has loaded the list.

// deniedEntry is the value of a deny-list entry.
type deniedEntry struct {
	ErasedAt time.Time `json:"erasedAt"`
	By       string    `json:"by"`
}

// denyList is one gateway's view of the deny list.
type denyList struct {
	hub  *transport.Hub    // whose connections an erasure closes
	kvs  kvwatch.KeyValues // the bucket's home
	auth *auth.Verifier    // refuses erased users' tokens; nil: none
	log  *zap.Logger

	mu sync.RWMutex // guards users
	// users are the erased user IDs seen so far.
	users map[string]bool
}

func newDenyList(h *transport.Hub, kvs kvwatch.KeyValues, verifier *auth.Verifier, log *zap.Logger) *denyList {
	return &denyList{hub: h, kvs: kvs, auth: verifier, log: log, users: map[string]bool{}}
}

// denied reports whether user's account was erased.
func (d *denyList) denied(user string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.users[user]
}

// add records user as erased here and closes their connections on this gateway.
func (d *denyList) add(user string) {
	d.mu.Lock()
	d.users[user] = true
	d.mu.Unlock()
	d.hub.Each(func(c *conn) {
		if c.UserID() == user {
			c.CloseWith(protocol.CloseUnauthorized, protocol.CodeUnauthorized, "account erased")
		}
	})
}

// put writes user's entry to the bucket (every gateway then refuses the user) and
// applies it here at once.
func (d *denyList) put(ctx context.Context, user, by string) error {
	kv, err := d.kvs.KeyValue(ctx, natsutil.DeniedBucket)
	if err != nil {
		return fmt.Errorf("deny list: %w", err)
	}
	v, _ := json.Marshal(deniedEntry{ErasedAt: time.Now().UTC(), By: by})
	if _, err := kv.Put(ctx, user, v); err != nil {
		return fmt.Errorf("deny list: %w", err)
	}
	d.add(user)
	return nil
}

// watch loads the deny list and installs it in the token verifier, then follows it
// in a goroutine tracked by wg until ctx ends.
func (d *denyList) watch(ctx context.Context, wg *sync.WaitGroup) error {
	if d.auth != nil {
		d.auth.SetRevoked(d.denied)
	}
	return kvwatch.Follow(ctx, wg, d.kvs, d.log, natsutil.DeniedBucket, func(e jetstream.KeyValueEntry) {
		if e.Operation() == jetstream.KeyValuePut {
			d.add(e.Key())
		}
	})
}

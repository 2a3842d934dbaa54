package livestate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// bucket returns the presence KV bucket; nil, nil while there is none (no presence
// role has run yet, so nobody is known to be online), or a CodeUnavailable error
// when NATS does not answer.
func (p *Presence) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	p.kvMu.Lock()
	defer p.kvMu.Unlock()
	if p.kv != nil {
		return p.kv, nil
	}
	kv, err := p.d.KV.KeyValue(ctx, presencekv.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		p.log.Warn("presence bucket unavailable", zap.Error(err))
		return nil, protocol.Errorf(protocol.CodeUnavailable, "presence is not available; retry")
	}
	p.kv = kv
	return kv, nil
}

// user returns uid's presence entry, nil if the user was never seen.
func (p *Presence) user(ctx context.Context, uid string) (*presencekv.User, error) {
	kv, err := p.bucket(ctx)
	if err != nil || kv == nil {
		return nil, err
	}
	e, err := kv.Get(ctx, presencekv.UserKey(uid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		p.log.Warn("presence read failed", zap.String("user_id", uid), zap.Error(err))
		return nil, protocol.Errorf(protocol.CodeUnavailable, "presence is not available; retry")
	}
	var u presencekv.User
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return nil, fmt.Errorf("presence entry of %s: %w", uid, err)
	}
	return &u, nil
}

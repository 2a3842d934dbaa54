package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/admin"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/subjects"
)

// writeProber is a store that can prove it takes writes (store.SQLiteStore).
type writeProber interface {
	ProbeWrite(ctx context.Context) error
}

// addWorkChecks adds the readiness checks of what the roles need to do their work,
// beyond a connection that is up: JetStream storing (not disabled, not out of
// disk), the streams answering through their leaders, the store taking writes,
// and the persister keeping up. Each failing check names its cause in /readyz's
// body.
func (a *App) addWorkChecks() {
	js, storage := a.JS, a.Storage
	a.Admin.AddCheck(admin.Check{Name: "jetstream", Check: func(ctx context.Context) error {
		return jetStreamReady(ctx, js, storage)
	}})
	if a.Store != nil {
		st, raw := a.Store, a.rawStore
		a.Admin.AddCheck(admin.Check{Name: "store", Check: func(ctx context.Context) error {
			if p, ok := raw.(writeProber); ok {
				return p.ProbeWrite(ctx) // a write answers for the reads too
			}
			return st.Ping(ctx)
		}})
	}
	if a.Persist != nil && a.Config.Admin.ReadyMaxPersisterLag > 0 {
		limit := a.Config.Admin.ReadyMaxPersisterLag
		a.Admin.AddCheck(admin.Check{Name: "persister", Check: func(ctx context.Context) error {
			return persisterLagReady(ctx, js, limit)
		}})
	}
}

// jetStreamReady is nil when JetStream can store and NATTER_IN and NATTER_LOG
// answer (a replicated stream answers only through its leader).
func jetStreamReady(ctx context.Context, js jetstream.JetStream, storage *natsutil.StorageWatch) error {
	if err := storage.Err(); err != nil {
		return err
	}
	// A server whose JetStream is disabled may not answer at all: give up early
	// enough to say so rather than "no answer".
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Until(dl)/4))
		defer cancel()
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("JetStream is disabled on the server: %w", err)
		}
		return fmt.Errorf("JetStream does not answer (is it disabled on the server, or has its meta group no leader?): %w", err)
	}
	for _, name := range []string{subjects.InStream, subjects.LogStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		if c := s.CachedInfo().Cluster; c != nil && s.CachedInfo().Config.Replicas > 1 && c.Leader == "" {
			return fmt.Errorf("stream %s has no leader", name)
		}
	}
	return nil
}

// persisterLagReady is nil while the persister's consumer has at most limit
// messages of NATTER_LOG not yet persisted (pending and unacknowledged).
func persisterLagReady(ctx context.Context, js jetstream.JetStream, limit int) error {
	c, err := js.Consumer(ctx, subjects.LogStream, subjects.PersisterConsumer)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", subjects.PersisterConsumer, err)
	}
	info := c.CachedInfo()
	if lag := info.NumPending + uint64(info.NumAckPending); lag > uint64(limit) {
		return fmt.Errorf("persister lags %d messages behind NATTER_LOG (admin.ready-max-persister-lag %d): is the store slow or failing?", lag, limit)
	}
	return nil
}

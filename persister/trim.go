package persister

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Why Natter trims NATTER_LOG itself: the log used to age out under a JetStream
// limits policy (max age 72 h). A persister stopped or stuck on one chat for that
// long would have let acknowledged messages leave the log before they were in the
// store: lost. NATTER_LOG now has no age limit in JetStream (natsutil.
// LogStreamConfig); the persisters remove, about once a TrimInterval, the messages
// that are both older than nats.log-max-age and at or below the PERSISTER
// consumer's ack floor, i.e. stored. A stopped persister therefore trims nothing
// and the log keeps everything until it is back (nats.log-max-bytes, if set, is a
// hard cap that stops sequencing when reached: backpressure, never loss).
//
// History merges the store with the log above the ack floor, so what is trimmed is
// always in the store. The notifier's consumer reads the same log: a notifier that
// lags by more than log-max-age misses what was trimmed, as it did under the age
// limit.

// Retention is how long NATTER_LOG keeps what is stored (the nats section's
// log-max-age, log-max-bytes and dedup-window).
type Retention struct {
	// MaxAge: stored messages older than this are removed; 0 keeps them (until
	// MaxBytes pressure).
	MaxAge time.Duration
	// MaxBytes is the stream's hard size cap (-1 or 0: none). Above three quarters
	// of it, stored messages older than DedupWindow are removed too.
	MaxBytes int64
	// DedupWindow is the youngest a message removed under size pressure may be.
	DedupWindow time.Duration
}

// TrimInterval is how often a persister trims NATTER_LOG. Tests shorten it.
var TrimInterval = time.Minute

// trimLoop trims NATTER_LOG every TrimInterval until ctx ends.
func (p *Persister) trimLoop(ctx context.Context) {
	for {
		sleep(ctx, TrimInterval)
		if ctx.Err() != nil {
			return
		}
		n, err := Trim(ctx, p.deps.JS, p.deps.Retention, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Warn("trimming NATTER_LOG failed; retrying next interval", zap.Error(err))
		case n > 0:
			p.log.Debug("NATTER_LOG trimmed", zap.Uint64("removed", n))
		}
	}
}

// Trim removes from NATTER_LOG the messages that are stored (at or below the
// PERSISTER consumer's ack floor) and older than r.MaxAge at now (or, above three
// quarters of r.MaxBytes, older than r.DedupWindow), and returns how many it
// removed. Without the PERSISTER consumer it removes nothing.
func Trim(ctx context.Context, js jetstream.JetStream, r Retention, now time.Time) (uint64, error) {
	st, err := js.Stream(ctx, subjects.LogStream)
	if err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	state := st.CachedInfo().State
	keep := r.MaxAge
	if r.MaxBytes > 0 && state.Bytes > uint64(r.MaxBytes)/4*3 {
		keep = r.DedupWindow
	}
	if keep <= 0 || state.Msgs == 0 {
		return 0, nil
	}
	cons, err := js.Consumer(ctx, subjects.LogStream, subjects.PersisterConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("trim: consumer %s: %w", subjects.PersisterConsumer, err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("trim: consumer %s: %w", subjects.PersisterConsumer, err)
	}
	upTo := ci.AckFloor.Stream + 1 // Purge removes the messages below upTo
	young, err := natsutil.ReadBatch(ctx, st, "", 0, now.Add(-keep), 1)
	if err != nil {
		return 0, fmt.Errorf("trim: first message younger than %s: %w", keep, err)
	}
	if len(young) == 1 {
		md, err := young[0].Metadata()
		if err != nil {
			return 0, fmt.Errorf("trim: %w", err)
		}
		upTo = min(upTo, md.Sequence.Stream)
	}
	if upTo <= state.FirstSeq {
		return 0, nil
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(upTo)); err != nil {
		return 0, fmt.Errorf("trim: purge below %d: %w", upTo, err)
	}
	return upTo - state.FirstSeq, nil
}

package natsutil

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestStorageError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"nil", nil, nil},
		{"insufficient storage", &jetstream.APIError{ErrorCode: 10047, Description: "insufficient storage resources available"}, ErrStorageFull},
		{"insufficient resources", fmt.Errorf("publish: %w", &jetstream.APIError{ErrorCode: 10023, Description: "insufficient resources"}), ErrStorageFull},
		{"enospc", errors.New("write /d/nats/1.blk: no space left on device"), ErrStorageFull},
		{"read-only", errors.New("write /d/nats/1.blk: read-only file system"), ErrStorageFailed},
		{"disabled", jetstream.ErrJetStreamNotEnabled, ErrStorageFailed},
		{"timeout", errors.New("context deadline exceeded"), nil},
		{"other api error", &jetstream.APIError{ErrorCode: 10071, Description: "wrong last sequence: 4"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := StorageError(tc.err)
			if tc.want == nil {
				require.NoError(t, got)
				return
			}
			require.ErrorIs(t, got, tc.want)
			require.Contains(t, got.Error(), tc.err.Error()[len(tc.err.Error())-10:], "keeps the server's words")
		})
	}
}

// An external server's storage error holds for StorageExternalHold: sends fail
// fast meanwhile, and waiting sends are released once, when it starts.
func TestStorageWatchExternal(t *testing.T) {
	old := StorageExternalHold
	StorageExternalHold = 200 * time.Millisecond
	t.Cleanup(func() { StorageExternalHold = old })
	w := NewStorageWatch(zap.NewNop())
	require.NoError(t, w.Err())
	tripped := w.Tripped()

	w.Report(errors.New("nats: timeout")) // not about storage
	require.NoError(t, w.Err())
	w.Report(errors.New("no space left on device"))
	require.ErrorIs(t, w.Err(), ErrStorageFull)
	select {
	case <-tripped:
	default:
		t.Fatal("Tripped is closed when storing fails")
	}
	require.Eventually(t, func() bool { return w.Err() == nil }, 5*time.Second, 10*time.Millisecond, "the error holds only a while")
	select {
	case <-w.Tripped():
		t.Fatal("a new Tripped channel after recovery")
	default:
	}

	var nilWatch *StorageWatch
	require.NoError(t, nilWatch.Err())
	nilWatch.Report(errors.New("no space left on device"))
	require.Nil(t, nilWatch.Tripped())
}

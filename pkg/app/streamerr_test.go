package app

import (
	"errors"
	"fmt"
	"testing"

	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/stretchr/testify/require"
)

// TestPartitionsChangedIsPermanent: a start whose nats.partitions differs from a
// NATTER_IN that holds sends says so at once (waiting changes nothing), while a
// NATS error that may pass is retried.
func TestPartitionsChangedIsPermanent(t *testing.T) {
	require.True(t, permanentStreamErr(fmt.Errorf("stream NATTER_IN: %w", natsutil.ErrPartitionsChanged)))
	require.False(t, permanentStreamErr(errors.New("nats: timeout")))
}

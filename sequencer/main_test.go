package sequencer_test

import (
	"testing"

	"github.com/natter-chat/natter/pkg/natstest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine of the role running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

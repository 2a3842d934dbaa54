package transport

import (
	"testing"

	"github.com/natter-chat/natter/pkg/natstest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a connection's writer, a hub
// dispatcher or a socket goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

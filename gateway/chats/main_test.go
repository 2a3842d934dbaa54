package chats

import (
	"testing"

	"github.com/natter-chat/natter/pkg/natstest"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

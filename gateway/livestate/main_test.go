package livestate

import (
	"testing"

	"github.com/natter-chat/natter/pkg/natstest"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine of presence or typing
// running (the reporter, the dispatcher, an indicator's timer).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

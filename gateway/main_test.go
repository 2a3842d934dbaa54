package gateway_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/testutil"
	"go.uber.org/goleak"
)

// TestMain validates every REST response and frame the tests receive against
// docs/openapi.yaml and docs/asyncapi.yaml (testutil.RunValidated), and fails the
// package if a test leaves a goroutine of the gateway running.
func TestMain(m *testing.M) {
	code := testutil.RunValidated(m)
	if code == 0 {
		http.DefaultClient.CloseIdleConnections() // the tests' keep-alive connections
		if err := goleak.Find(natstest.LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

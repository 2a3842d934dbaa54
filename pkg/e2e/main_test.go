package e2e

import (
	"os"
	"testing"

	"github.com/natter-chat/natter/pkg/testutil"
)

// TestMain validates every REST response and frame the tests receive against
// docs/openapi.yaml and docs/asyncapi.yaml (testutil.RunValidated), and removes
// the binaries the process tests built (proc_test.go).
func TestMain(m *testing.M) {
	code := testutil.RunValidated(m)
	removeBinaries()
	os.Exit(code)
}

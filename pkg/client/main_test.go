package client_test

import (
	"os"
	"testing"

	"github.com/natter-chat/natter/pkg/testutil"
)

// TestMain validates every REST response and frame the tests receive against
// docs/openapi.yaml and docs/asyncapi.yaml (testutil.RunValidated).
func TestMain(m *testing.M) { os.Exit(testutil.RunValidated(m)) }

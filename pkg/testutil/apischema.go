package testutil

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/natter-chat/natter/pkg/apischema"
	"github.com/natter-chat/natter/pkg/client"
)

// RunValidated runs a package's tests (call it from TestMain) with every REST
// response and every frame they receive validated against docs/openapi.yaml and
// docs/asyncapi.yaml: REST calls through http.DefaultTransport (Natter.Do, and any
// client without its own transport), event streams event by event, and WebSocket
// frames read by pkg/client. A mismatch fails the call that saw it (an error from the
// HTTP client, a WebSocket connection ended with the error); and any mismatch at all
// makes the run fail at the end, listing them, so one that no test looked at still
// counts. It returns the exit code.
func RunValidated(m *testing.M) int {
	v, err := apischema.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var (
		mu     sync.Mutex
		failed []error
	)
	report := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, err)
	}
	base := http.DefaultTransport
	http.DefaultTransport = &apischema.Transport{Base: base, Validator: v, Report: report}
	client.CheckFrame = func(raw []byte) error {
		if err := v.Frame(raw); err != nil {
			err = fmt.Errorf("apischema: WebSocket: %w\nframe: %.2000s", err, raw)
			report(err)
			return err
		}
		return nil
	}
	code := m.Run()
	http.DefaultTransport, client.CheckFrame = base, nil
	mu.Lock()
	defer mu.Unlock()
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d responses or frames do not match the published schemas:\n", len(failed))
		for _, err := range failed {
			fmt.Fprintf(os.Stderr, "  %v\n", err)
		}
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Package testutil starts real dependencies for tests: an in-process NATS server
// with JetStream, and a whole natter process on random ports. (Clusters that are
// crashed for real are nats-server processes: pkg/e2e/proc_test.go.)
package testutil

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSServer starts an in-process NATS server with JetStream on t.TempDir(). Its logs
// are shown when NATTER_TEST_NATS_LOG is set.
func NATSServer(t testing.TB) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	if os.Getenv("NATTER_TEST_NATS_LOG") != "" {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

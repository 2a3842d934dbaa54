// Package natstest starts in-process NATS servers for tests, as nats-server's own
// test helpers do. It imports nothing of Natter, so a test that needs only a broker
// does not link the program (pkg/testutil starts a whole natter process; clusters
// that are crashed for real are nats-server processes: pkg/e2e/proc_test.go).
package natstest

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server starts an in-process NATS server with JetStream on t.TempDir(), listening
// on a random loopback port, and shuts it down when the test ends. Its logs are shown
// when NATTER_TEST_NATS_LOG is set. configure, if given, changes the options first
// (e.g. SyncAlways).
func Server(t testing.TB, configure ...func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true}
	for _, c := range configure {
		c(opts)
	}
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

// Conn connects to s in-process and closes the connection when the test ends.
func Conn(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

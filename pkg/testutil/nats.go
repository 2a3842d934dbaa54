// Package testutil starts real dependencies for tests: an in-process NATS server
// with JetStream (or a 3-node cluster), and a whole natter process on random ports.
package testutil

import (
	"fmt"
	"os"
	"path/filepath"
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

// Cluster is an in-process NATS cluster.
type Cluster struct {
	Servers []*server.Server
	opts    []*server.Options
}

// URLs returns the client URLs of the running servers, comma-separated.
func (c *Cluster) URLs() string {
	s := ""
	for _, ns := range c.Servers {
		if ns == nil || !ns.Running() {
			continue
		}
		if s != "" {
			s += ","
		}
		s += ns.ClientURL()
	}
	return s
}

// Kill stops server i abruptly.
func (c *Cluster) Kill(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// Restart starts server i again with its original options and data.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	ns, err := server.NewServer(c.opts[i])
	if err != nil {
		t.Fatalf("restart nats %d: %v", i, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		t.Fatalf("nats %d not ready after restart", i)
	}
	c.Servers[i] = ns
}

// NATSCluster starts an in-process cluster of n JetStream servers on loopback.
func NATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	routes := ""
	for i := 0; i < n; i++ {
		if i > 0 {
			routes += ","
		}
		routes += fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i])
	}
	c := &Cluster{}
	base := t.TempDir()
	for i := 0; i < n; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: ports[i],
			JetStream: true, StoreDir: filepath.Join(base, fmt.Sprintf("n%d", i)), NoSigs: true,
			Cluster: server.ClusterOpts{Name: "natter-test", Host: "127.0.0.1", Port: ports[n+i]},
			Routes:  server.RoutesFromStr(routes),
		}
		ns, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("cluster node %d: %v", i, err)
		}
		go ns.Start()
		c.Servers = append(c.Servers, ns)
		c.opts = append(c.opts, o)
	}
	for i, ns := range c.Servers {
		if !ns.ReadyForConnections(20 * time.Second) {
			t.Fatalf("cluster node %d not ready", i)
		}
	}
	// Wait for a JetStream meta leader.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, ns := range c.Servers {
			if ns.JetStreamIsLeader() {
				t.Cleanup(func() {
					for _, ns := range c.Servers {
						if ns != nil {
							ns.Shutdown()
						}
					}
				})
				return c
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no JetStream meta leader in the test cluster")
	return nil
}

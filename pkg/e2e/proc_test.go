package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// This file starts real OS processes for the tests that crash things: natter role
// processes (the binary of this module) and nats-server processes (the version
// go.mod pins, built from the module cache). Every port is chosen by the process
// itself (port 0 or -1) and read back from its log or ports file, so no test races
// another for a port it was told was free. Tests of several processes share these
// helpers; keep process plumbing here.

// binDir holds the binaries built for this test run, made on first use;
// TestMain (main_test.go) removes it with removeBinaries.
var binDir struct {
	once sync.Once
	path string
	err  error
}

func removeBinaries() {
	if binDir.path != "" {
		os.RemoveAll(binDir.path)
	}
}

// builtBinary is a binary built at most once per test run, on first use (tests
// that start no process do not pay for the build).
type builtBinary struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

var natterBin, natsServerBin builtBinary

func (b *builtBinary) get(t testing.TB, name, pkg string) string {
	t.Helper()
	binDir.once.Do(func() { binDir.path, binDir.err = os.MkdirTemp("", "natter-e2e-bin-") })
	require.NoError(t, binDir.err)
	b.once.Do(func() {
		b.path = filepath.Join(binDir.path, name)
		b.out, b.err = exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput()
	})
	require.NoError(t, b.err, "go build %s:\n%s", pkg, b.out)
	return b.path
}

// natterBinary returns the natter binary of this module, built once per run.
func natterBinary(t testing.TB) string {
	return natterBin.get(t, "natter", "github.com/natter-chat/natter")
}

// natsServerBinary returns nats-server at the version go.mod requires, built once
// per run from the module cache (distribution packages are too old for atomic
// batches).
func natsServerBinary(t testing.TB) string {
	return natsServerBin.get(t, "nats-server", "github.com/nats-io/nats-server/v2")
}

// proc is one natter process. Its admin and gateway listen on port 0; start reads
// the bound addresses from the process's log.
type proc struct {
	t    testing.TB
	name string
	bin  string
	args []string // without --admin.listen / --gateway.listen, which start adds
	gw   bool     // runs the gateway role
	logf string

	mu    sync.Mutex // guards the fields below
	cmd   *exec.Cmd
	done  chan struct{}
	admin string // admin host:port of the current run
	http  string // gateway host:port of the current run ("" for other roles)
}

// newProc returns a natter process (not started) logging to dir/name.log.
func newProc(t testing.TB, dir, name string, gateway bool, args ...string) *proc {
	return &proc{t: t, name: name, bin: natterBinary(t), args: args, gw: gateway, logf: filepath.Join(dir, name+".log")}
}

// start starts the process and waits until /readyz answers 200. Like an
// orchestrator, it starts again a process that exits before it is ready (at start
// on a fresh cluster, stream creation can fail until every JetStream peer is known).
func (p *proc) start() {
	p.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		done, off := p.spawn()
		for {
			if p.addrs(off) && p.ready() {
				return
			}
			select {
			case <-done:
			case <-time.After(50 * time.Millisecond):
				continue
			}
			break // exited: start it again
		}
	}
	p.t.Fatalf("%s not ready within 45s\n%s", p.name, p.tail())
}

// spawn starts the process once; it returns a channel closed when it exits and the
// log offset where this run's output begins.
func (p *proc) spawn() (chan struct{}, int64) {
	f, err := os.OpenFile(p.logf, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(p.t, err)
	fmt.Fprintf(f, "==== start %s %v\n", p.name, time.Now().Format(time.RFC3339Nano))
	off, err := f.Seek(0, 2)
	require.NoError(p.t, err)
	args := append([]string{}, p.args...)
	args = append(args, "--admin.listen", "127.0.0.1:0", "--log.format", "json")
	if p.gw {
		args = append(args, "--gateway.listen", "127.0.0.1:0")
	}
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = diesWithTest()
	require.NoError(p.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done, p.admin, p.http = cmd, done, "", ""
	p.mu.Unlock()
	return done, off
}

// addrs reads the bound admin (and gateway) address of the run whose log starts at
// off; it reports whether they are known.
func (p *proc) addrs(off int64) bool {
	p.mu.Lock()
	known := p.admin != "" && (!p.gw || p.http != "")
	p.mu.Unlock()
	if known {
		return true
	}
	f, err := os.Open(p.logf)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return false
	}
	var admin, gw string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Listen  string `json:"listen"`
			Gateway string `json:"gateway"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Msg {
		case "admin server listening":
			admin = line.Listen
		case "natter started":
			gw = line.Gateway
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.admin, p.http = admin, gw
	return admin != "" && (!p.gw || gw != "")
}

// adminAddr is the admin address of the current run.
func (p *proc) adminAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.admin
}

// gatewayAddr is the gateway address of the current run, "" if it is not running.
func (p *proc) gatewayAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return ""
	}
	select {
	case <-p.done:
		return ""
	default:
		return p.http
	}
}

// ready reports whether /readyz answers 200.
func (p *proc) ready() bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.adminAddr() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// signal sends sig and waits for the process to exit (d at most, then SIGKILL).
func (p *proc) signal(sig syscall.Signal, d time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
	}
}

// kill crashes the process: SIGKILL, nothing of it runs after.
func (p *proc) kill()      { p.signal(syscall.SIGKILL, 10*time.Second) }
func (p *proc) terminate() { p.signal(syscall.SIGTERM, 30*time.Second) }

// tail returns the end of the process's log.
func (p *proc) tail() string { return fileTail(p.logf) }

func fileTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// metricSum sums every sample of name whose labels contain labels (-1: none).
func (p *proc) metricSum(name, labels string) float64 {
	resp, err := http.Get("http://" + p.adminAddr() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if (strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{")) && strings.Contains(line, labels) {
			if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				sum, found = sum+v, true
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// stopAll stops procs with SIGTERM in parallel and, if the test failed, logs their
// log tails.
func stopAll(t testing.TB, procs []*proc) {
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.terminate() })
	}
	wg.Wait()
	if t.Failed() {
		for _, p := range procs {
			t.Logf("---- %s log tail:\n%s", p.name, p.tail())
		}
	}
}

// natsNode is one nats-server process of a natsCluster.
type natsNode struct {
	name     string
	storeDir string
	dir      string // config, log

	mu      sync.Mutex // guards the fields below
	cmd     *exec.Cmd
	done    chan struct{}
	client  int // client port
	cluster int // route port
}

func (n *natsNode) log() string { return filepath.Join(n.dir, "nats.log") }

// natsCluster is a JetStream cluster of nats-server OS processes on loopback, each
// with sync_interval: always (every acknowledged message is fsynced, as in
// deploy/nats), so a SIGKILL loses nothing a client was told is stored.
//
// Every node lists every node's route port, as deploy/nats does: JetStream refuses
// to cluster without configured routes, so a node cannot be started on a port of
// its own choosing and found later. The ports are probed free and, if another
// process takes one before the server binds it, the servers exit with a bind
// error and the cluster is started again on new ports.
type natsCluster struct {
	t     testing.TB
	bin   string
	nodes []*natsNode
}

// startNATSCluster starts n nats-server processes forming one cluster, and waits
// for a JetStream meta leader. They are killed when the test ends.
func startNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, bin: natsServerBinary(t)}
	base := t.TempDir()
	for i := range n {
		nd := &natsNode{name: fmt.Sprintf("n%d", i+1), dir: filepath.Join(base, fmt.Sprintf("n%d", i+1))}
		nd.storeDir = filepath.Join(nd.dir, "jetstream")
		require.NoError(t, os.MkdirAll(nd.storeDir, 0o700))
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("---- nats %s log tail:\n%s", nd.name, fileTail(nd.log()))
			}
		}
	})
	for attempt := 0; ; attempt++ {
		ports := probePorts(t, 2*n)
		for i, nd := range c.nodes {
			nd.client, nd.cluster = ports[i], ports[n+i]
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range c.nodes {
			wg.Go(func() { errs[i] = c.launch(i) })
		}
		wg.Wait()
		err := errors.Join(errs...)
		if err == nil {
			break
		}
		for i := range c.nodes {
			c.kill(i)
		}
		if !errors.Is(err, errBindConflict) || attempt == 4 {
			t.Fatalf("start nats-server cluster: %v", err)
		}
		t.Logf("nats-server cluster: %v; starting again on other ports", err)
	}
	require.Eventually(t, func() bool {
		nc, err := nats.Connect(c.URLs(), nats.Timeout(2*time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	}, 60*time.Second, 200*time.Millisecond, "JetStream meta leader elected in the nats-server cluster")
	return c
}

// errBindConflict is a nats-server that could not bind its port.
var errBindConflict = errors.New("port taken")

// probePorts returns n distinct loopback ports that were free a moment ago. Only
// natsCluster uses it, and it retries on a bind conflict (see there).
func probePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// restart starts node i again on its ports, with its data. If another process
// took a port meanwhile it waits for it a few seconds, then fails the test.
func (c *natsCluster) restart(i int) {
	c.t.Helper()
	var err error
	for range 20 {
		if err = c.launch(i); err == nil || !errors.Is(err, errBindConflict) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(c.t, err, "restart nats-server %s", c.nodes[i].name)
}

// launch starts node i's process and waits until it serves clients.
func (c *natsCluster) launch(i int) error {
	nd := c.nodes[i]
	var routes []string
	for _, o := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.cluster))
	}
	conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
max_pending: 256MB
max_payload: 1MB
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 64GB # a cap, not an allocation: above nats.media-max-bytes (10 GB)
  sync_interval: always
}
cluster {
  name: natter-crash
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, nd.name, nd.client, nd.storeDir, nd.cluster, strings.Join(routes, ", "))
	cf := filepath.Join(nd.dir, "nats.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(nd.log(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== start %s %v\n", nd.name, time.Now().Format(time.RFC3339Nano))
	off, _ := logf.Seek(0, 2)
	cmd := exec.Command(c.bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = diesWithTest()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	nd.mu.Lock()
	nd.cmd, nd.done = cmd, done
	nd.mu.Unlock()
	deadline := time.After(30 * time.Second)
	for {
		out := logSince(nd.log(), off)
		if strings.Contains(out, "Server is ready") {
			return nil
		}
		select {
		case <-done:
			out = logSince(nd.log(), off)
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("nats-server %s: %w", nd.name, errBindConflict)
			}
			return fmt.Errorf("nats-server %s exited at start:\n%s", nd.name, out)
		case <-deadline:
			return fmt.Errorf("nats-server %s not ready within 30s", nd.name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logSince returns the file's content from off.
func logSince(path string, off int64) string {
	b, _ := os.ReadFile(path)
	if int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// kill SIGKILLs node i and waits until it is gone (no-op if it is not running).
func (c *natsCluster) kill(i int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// URLs returns the client URLs of every node, comma-separated (a client tries
// them in turn and learns the cluster's from the server it reaches).
func (c *natsCluster) URLs() string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.client))
	}
	return strings.Join(urls, ",")
}

// index returns the index of the node named name (-1 if none).
func (c *natsCluster) index(name string) int {
	for i, nd := range c.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// streamLeader returns the index of the node leading stream, asked through js.
func (c *natsCluster) streamLeader(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return -1, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1, err
	}
	if info.Cluster == nil || c.index(info.Cluster.Leader) < 0 {
		return -1, fmt.Errorf("stream %s has no known leader", stream)
	}
	return c.index(info.Cluster.Leader), nil
}

// streamCurrent reports whether every replica of stream is online and current.
func streamCurrent(ctx context.Context, js jetstream.JetStream, stream string, replicas int) bool {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != replicas-1 {
		return false
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			return false
		}
	}
	return true
}

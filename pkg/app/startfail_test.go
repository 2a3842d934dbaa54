package app

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The bad-start tests run the real binary, as an operator does: what they check is
// the exit code, how long a start that cannot work takes to give up, and the one
// line it prints on stderr.

var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binBuild error
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "natter-app-test-")
	if err != nil {
		panic(err)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// natterBin builds the natter command once per test binary (only the tests that
// run it pay for the build).
func natterBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "natter")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/natter-chat/natter").CombinedOutput()
		if err != nil {
			binBuild = errors.New(string(out))
		}
	})
	require.NoError(t, binBuild, "go build")
	return binPath
}

// startBound is how long a start that cannot work may take to say so.
const startBound = 10 * time.Second

// badStart runs `natter serve args...` and checks that it exits non-zero within
// startBound, with exactly one "natter: " line on stderr that contains every want,
// and no panic or stack trace.
func badStart(t *testing.T, args []string, want ...string) {
	t.Helper()
	cmd := exec.Command(natterBin(t), append([]string{"serve"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "NATTER_LOG_FORMAT=json") // no colour codes in the lines
	start := time.Now()
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(startBound + 20*time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("natter serve %v still running after %s\nstderr:\n%s", args, startBound+20*time.Second, stderr.String())
	}
	took := time.Since(start)
	out := stderr.String()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "natter serve %v should fail; stderr:\n%s", args, out)
	require.NotEqual(t, 0, exit.ExitCode())
	require.Less(t, took, startBound, "a start that cannot work must say so within %s; stderr:\n%s", startBound, out)
	require.NotContains(t, out, "panic", out)
	require.NotContains(t, out, "goroutine ", out)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "natter: ") {
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, 1, "want one natter: line on stderr:\n%s", out)
	for _, w := range want {
		require.Contains(t, lines[0], w, "stderr:\n%s", out)
	}
}

// quiet are the flags of a start that listens only on free loopback ports (port 0)
// and serves NATS in-process only.
func quiet(dataDir string, more ...string) []string {
	return append([]string{"--data-dir", dataDir, "--gateway.listen", "127.0.0.1:0", "--admin.listen", "127.0.0.1:0",
		"--nats.listen", "none"}, more...)
}

// busyPort holds a loopback listener for the test and returns its address.
func busyPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// silentServer is an address that accepts TCP connections and never answers.
func silentServer(t *testing.T) string { return busyPort(t) } // the kernel completes the handshake

// closingServer is an address that accepts connections and closes them at once.
func closingServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// readOnlyDir returns an existing directory this process cannot write to, after
// prepare (if not nil) filled it: a tmpfs remounted read-only as root (root writes
// through any mode bits), mode 0500 for another user.
func readOnlyDir(t *testing.T, prepare func(dir string)) string {
	t.Helper()
	d := t.TempDir()
	if os.Geteuid() != 0 {
		if prepare != nil {
			prepare(d)
		}
		require.NoError(t, filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				err = os.Chmod(p, 0o500)
			}
			return err
		}))
		t.Cleanup(func() {
			_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					_ = os.Chmod(p, 0o700)
				}
				return nil
			})
		})
		return d
	}
	if err := syscall.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs as root (%v): a directory root cannot write needs a read-only mount", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(d, 0) })
	if prepare != nil {
		prepare(d)
	}
	require.NoError(t, syscall.Mount("", d, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""), "remount read-only")
	return d
}

func TestBadStartPortInUse(t *testing.T) {
	for _, tc := range []struct{ name, flag, want string }{
		{"gateway", "--gateway.listen", "gateway.listen"},
		{"admin", "--admin.listen", "admin.listen"},
		{"nats", "--nats.listen", "nats.listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := busyPort(t)
			// Three starts: the gateway's used to panic in two of three.
			for range 3 {
				badStart(t, append(quiet(t.TempDir()), tc.flag, addr), addr, "address already in use", tc.want)
			}
		})
	}
}

func TestBadStartDataDir(t *testing.T) {
	t.Run("a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
		badStart(t, quiet(f), f, "not a directory", "data-dir")
	})
	t.Run("read-only", func(t *testing.T) {
		d := filepath.Join(readOnlyDir(t, nil), "data")
		badStart(t, quiet(d), d)
	})
	t.Run("store dir read-only", func(t *testing.T) {
		d := readOnlyDir(t, func(d string) { require.NoError(t, os.Mkdir(filepath.Join(d, "nats"), 0o700)) })
		badStart(t, quiet(d), filepath.Join(d, "nats"), "not writable")
	})
}

func TestBadStartSQLite(t *testing.T) {
	t.Run("garbage file", func(t *testing.T) {
		d := t.TempDir()
		db := filepath.Join(d, "natter.db")
		junk := bytes.Repeat([]byte("this is not a database "), 4096)
		require.NoError(t, os.WriteFile(db, junk, 0o600))
		badStart(t, quiet(d), db, "not a usable SQLite database")
		got, err := os.ReadFile(db)
		require.NoError(t, err)
		require.Equal(t, junk, got, "a bad start changes nothing")
	})
	t.Run("unwritable path", func(t *testing.T) {
		db := filepath.Join(readOnlyDir(t, nil), "natter.db")
		badStart(t, quiet(t.TempDir(), "--store.sqlite-path", db), db, "cannot open")
	})
	t.Run("unwritable directory", func(t *testing.T) {
		db := filepath.Join(readOnlyDir(t, nil), "sub", "natter.db")
		badStart(t, quiet(t.TempDir(), "--store.sqlite-path", db), filepath.Join(filepath.Dir(db)))
	})
}

func TestBadStartUnreachable(t *testing.T) {
	t.Run("nats silent", func(t *testing.T) {
		addr := silentServer(t)
		badStart(t, quiet(t.TempDir(), "--nats.url", "nats://"+addr), addr, "nats.url")
	})
	t.Run("nats closing", func(t *testing.T) {
		addr := closingServer(t)
		badStart(t, quiet(t.TempDir(), "--nats.url", "nats://"+addr), addr, "nats.url")
	})
	t.Run("cassandra silent", func(t *testing.T) { // waits cassandra.connect-timeout (5 s) once
		host, port, err := net.SplitHostPort(silentServer(t))
		require.NoError(t, err)
		badStart(t, quiet(t.TempDir(), "--store.backend", "cassandra", "--cassandra.hosts", host, "--cassandra.port", port),
			host, "cassandra.hosts")
	})
	t.Run("cassandra closing", func(t *testing.T) {
		host, port, err := net.SplitHostPort(closingServer(t))
		require.NoError(t, err)
		badStart(t, quiet(t.TempDir(), "--store.backend", "cassandra", "--cassandra.hosts", host, "--cassandra.port", port),
			host, "cassandra.hosts")
	})
}

func TestBadStartContradictingSettings(t *testing.T) {
	t.Run("dedup window", func(t *testing.T) {
		badStart(t, quiet(t.TempDir(), "--nats.dedup-window", "10m", "--nats.log-max-age", "5m"),
			"nats.dedup-window (10m0s)", "nats.log-max-age (5m0s)")
	})
	// A stream or bucket cap above what JetStream may store on this disk is refused
	// by the server; waiting changes nothing, so the start says which flag to lower.
	const pib = "1125899906842624"
	t.Run("media bucket above the disk", func(t *testing.T) {
		badStart(t, quiet(t.TempDir(), "--nats.media-max-bytes", pib), "natter_media", "nats.media-max-bytes ("+pib+" bytes)")
	})
	t.Run("log above the disk", func(t *testing.T) {
		badStart(t, quiet(t.TempDir(), "--nats.log-max-bytes", pib), "NATTER_LOG", "nats.log-max-bytes ("+pib+" bytes)")
	})
	t.Run("one address twice", func(t *testing.T) {
		addr := busyPort(t) // never bound by natter: the configuration is refused first
		badStart(t, quiet(t.TempDir(), "--gateway.listen", addr, "--admin.listen", addr),
			"gateway.listen and admin.listen are both "+addr)
	})
}

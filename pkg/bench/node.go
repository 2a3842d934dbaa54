package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// node is one process's share of the connections: this process (localNode) or a
// child process (childNode) driven over its stdin and stdout.
type node interface {
	// do runs one step and returns when it is done:
	//   connect, track, start <unix ns>, wait, prepare <offline>, disconnect,
	//   reconnect <unix ns>.
	do(ctx context.Context, cmd string, arg int64) error
	progress() Progress
	finish(ctx context.Context) (Part, error)
	pid() int
}

type localNode struct{ w *worker }

func (n *localNode) do(ctx context.Context, cmd string, arg int64) error {
	return n.w.do(ctx, cmd, arg)
}
func (n *localNode) progress() Progress { return n.w.progress() }
func (n *localNode) pid() int           { return os.Getpid() }
func (n *localNode) finish(ctx context.Context) (Part, error) {
	n.w.close()
	return n.w.part(), nil
}

// do runs a step on the worker (see node.do).
func (w *worker) do(ctx context.Context, cmd string, arg int64) error {
	switch cmd {
	case "connect":
		w.connectAll(ctx, false)
	case "track":
		w.enableTracking()
	case "start":
		w.startSending(time.Unix(0, arg))
	case "wait":
		w.waitSenders()
	case "prepare":
		w.prepareResume(int(arg))
	case "disconnect":
		w.disconnect()
	case "reconnect":
		w.reconnect(ctx, time.Unix(0, arg))
	default:
		return fmt.Errorf("bench: unknown step %q", cmd)
	}
	return nil
}

// childRun is what a child process reads from its run file.
type childRun struct {
	Config Config `json:"config"`
	Plan   *Plan  `json:"plan"`
	Procs  int    `json:"procs"`
}

// childEvent is one line a child writes to its stdout.
type childEvent struct {
	Event    string    `json:"event"` // ready, done, progress, part, error
	Cmd      string    `json:"cmd,omitempty"`
	Progress *Progress `json:"progress,omitempty"`
	Part     *Part     `json:"part,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// span returns the connections [lo, hi) of child i of n.
func span(conns, i, n int) (int, int) { return conns * i / n, conns * (i + 1) / n }

// runChild is a child process: it runs its span of connections, one step per line
// read from in ("<cmd> <arg>"), answers each with a done event, writes progress
// every 500 ms, and on "finish" writes its Part and exits.
func runChild(path string, idx int, in io.Reader, out, stderr io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var run childRun
	if err := json.Unmarshal(data, &run); err != nil {
		return fmt.Errorf("bench child: run file: %w", err)
	}
	cfg := run.Config
	cfg.Stderr = stderr
	tokens, err := newTokenSource(cfg.SecretFile, cfg.DataDir, cfg.TokenURL)
	if err != nil {
		return err
	}
	lo, hi := span(run.Plan.Conns, idx, run.Procs)
	w, err := newWorker(&cfg, run.Plan, lo, hi, tokens)
	if err != nil {
		return err
	}
	var mu sync.Mutex // guards enc
	enc := json.NewEncoder(out)
	emit := func(e childEvent) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p := w.progress()
				emit(childEvent{Event: "progress", Progress: &p})
			}
		}
	}()
	emit(childEvent{Event: "ready"})
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, argS, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if cmd == "finish" {
			w.close()
			part := w.part()
			cancel()
			emit(childEvent{Event: "part", Part: &part})
			return nil
		}
		arg, _ := strconv.ParseInt(argS, 10, 64)
		if err := w.do(ctx, cmd, arg); err != nil {
			emit(childEvent{Event: "error", Error: err.Error()})
			continue
		}
		p := w.progress() // the parent reads the step's outcome right after done
		emit(childEvent{Event: "progress", Progress: &p})
		emit(childEvent{Event: "done", Cmd: cmd})
	}
	w.close()
	return sc.Err()
}

// childNode drives a child process.
type childNode struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu   sync.Mutex // guards last
	last Progress

	events chan childEvent // ready, done, part, error (progress is absorbed)
	exited chan struct{}
}

// startChild starts child i of a run described by the file at path.
func startChild(ctx context.Context, path string, i int, stderr io.Writer) (*childNode, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "bench", "--child", path, "--child-index", strconv.Itoa(i))
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start child %d: %w", i, err)
	}
	n := &childNode{cmd: cmd, stdin: stdin, events: make(chan childEvent, 16), exited: make(chan struct{})}
	go func() {
		defer close(n.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var e childEvent
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			if e.Event == "progress" && e.Progress != nil {
				n.mu.Lock()
				n.last = *e.Progress
				n.mu.Unlock()
				continue
			}
			n.events <- e
		}
		_ = cmd.Wait()
	}()
	if _, err := n.await(ctx, "ready"); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *childNode) await(ctx context.Context, event string) (childEvent, error) {
	select {
	case e := <-n.events:
		if e.Event == "error" {
			return e, fmt.Errorf("bench child %d: %s", n.cmd.Process.Pid, e.Error)
		}
		if e.Event != event {
			return e, fmt.Errorf("bench child %d: expected %s, got %s", n.cmd.Process.Pid, event, e.Event)
		}
		return e, nil
	case <-n.exited:
		return childEvent{}, fmt.Errorf("bench child %d exited", n.cmd.Process.Pid)
	case <-ctx.Done():
		return childEvent{}, ctx.Err()
	}
}

func (n *childNode) do(ctx context.Context, cmd string, arg int64) error {
	if _, err := fmt.Fprintf(n.stdin, "%s %d\n", cmd, arg); err != nil {
		return err
	}
	_, err := n.await(ctx, "done")
	return err
}

func (n *childNode) progress() Progress {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last
}

func (n *childNode) pid() int { return n.cmd.Process.Pid }

func (n *childNode) finish(ctx context.Context) (Part, error) {
	if _, err := fmt.Fprintln(n.stdin, "finish"); err != nil {
		return Part{}, err
	}
	e, err := n.await(ctx, "part")
	n.stdin.Close()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
	}
	if err != nil {
		return Part{}, err
	}
	if e.Part == nil {
		return Part{}, errors.New("bench child: empty part")
	}
	return *e.Part, nil
}

// kill ends a child that is still running (after an error).
func (n *childNode) kill() {
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Kill()
	}
}

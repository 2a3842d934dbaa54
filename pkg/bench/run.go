package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/store"
)

// Run runs the bench described by cfg (resolved by Main, or by a test) and returns
// what it measured. Progress goes to cfg's stderr once a second. An error means the
// run could not be carried out; a run that completed with losses or errors returns
// a Result with OK false and no error.
func Run(ctx context.Context, cfg *Config) (*Result, error) {
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	res := &Result{Mode: cfg.Mode, Conns: cfg.Conns, Users: cfg.Users, ChatSize: cfg.ChatSize, Rate: cfg.Rate,
		Duration: cfg.Duration.Seconds(), Warmup: cfg.Warmup.Seconds(), Size: cfg.Size, Procs: cfg.Procs,
		Gateways: len(cfg.URLs), Errors: map[string]int64{}}
	if cfg.Mode == "baseline" || cfg.Baseline {
		b, err := runBaseline(ctx, cfg)
		if err != nil {
			return nil, err
		}
		res.Baseline = b
		if cfg.Mode == "baseline" {
			res.OK = true
			return res, nil
		}
	}
	tokens, err := newTokenSource(cfg.SecretFile, cfg.DataDir, cfg.TokenURL)
	if err != nil {
		return nil, err
	}
	run := cfg.RunID
	if run == "" {
		run = newRunID()
	}
	res.Run = run
	r := &runner{cfg: cfg, res: res, tokens: tokens}
	if cfg.Mode == "largegroup" {
		res.ChatSize = cfg.GroupSize
	}
	var plan *Plan
	if cfg.Mode == "idle" {
		plan = newPlan(run, cfg.Users, cfg.Conns, 0, 0, 0)
	} else {
		r.sampleServer(ctx, "start")
		plan = newPlan(run, cfg.Users, cfg.Conns, cfg.Chats, cfg.ChatSize, cfg.Senders)
		t0 := time.Now()
		if err := r.createChats(ctx, plan); err != nil {
			return nil, err
		}
		res.CreateS, res.CreateVia = time.Since(t0).Seconds(), cfg.Create
		fmt.Fprintf(cfg.Stderr, "bench: created %d chats of %d via %s in %.1fs\n", len(plan.Chats), res.ChatSize, cfg.Create, res.CreateS)
		if lg := res.LargeGroup; lg != nil {
			lg.CreateS = res.CreateS
			lg.AddsPerSec = float64(lg.GroupSize) / max(res.CreateS, 1e-9)
		}
		r.sampleServer(ctx, "created")
	}
	res.Chats = len(plan.Chats)
	if cfg.Mode == "publish" {
		r.plan = plan
		if err := r.publishRun(ctx); err != nil {
			return nil, err
		}
		return res, nil
	}
	nodes, cleanup, err := startNodes(ctx, cfg, plan, tokens)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	r.plan, r.nodes = plan, nodes
	switch cfg.Mode {
	case "load", "fanout":
		err = r.load(ctx)
	case "largegroup":
		err = r.largeGroup(ctx)
	case "idle":
		err = r.idle(ctx)
	case "resume":
		err = r.resume(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := r.collect(ctx); err != nil {
		return nil, err
	}
	if n := float64(len(plan.Chats)); n > 0 && res.Sent > 0 && cfg.Mode == "load" {
		res.ChatsTouched = n * (1 - math.Pow(1-1/n, float64(res.Sent)))
	}
	return res, nil
}

// createChats creates the chats of plan through the REST API or the store
// (--create) and fills in their IDs.
func (r *runner) createChats(ctx context.Context, plan *Plan) error {
	cfg := r.cfg
	if cfg.Create == "existing" {
		// An earlier run (--run) created these direct chats: only their IDs are needed.
		for j := range plan.Chats {
			c := &plan.Chats[j]
			c.ID = ids.Direct(plan.Users[c.Members[0]], plan.Users[c.Members[1]])
		}
		plan.dedupe()
		return nil
	}
	if cfg.Create == "store" {
		path := cfg.SQLitePath
		if path == "" {
			path = filepath.Join(cfg.DataDir, "natter.db")
		}
		st, err := store.OpenSQLite(ctx, path)
		if err != nil {
			return fmt.Errorf("bench: --create store: %w", err)
		}
		defer st.Close()
		t0 := time.Now()
		return createChatsInStore(ctx, st, plan, max(cfg.CreateConcurrency, 1), func(done int) {
			if done%100_000 == 0 {
				fmt.Fprintf(cfg.Stderr, "[create  %5.1fs] %d/%d chats in the store\n", time.Since(t0).Seconds(), done, len(plan.Chats))
			}
		})
	}
	base, err := httpBase(cfg.URLs[0])
	if err != nil {
		return err
	}
	rc := &restClient{base: base, tokens: r.tokens, client: &http.Client{Timeout: 120 * time.Second}}
	if cfg.Mode == "largegroup" {
		return r.createLargeGroup(ctx, rc, plan, cfg.GroupSize) // largegroup.go
	}
	return createChats(ctx, rc, plan, max(cfg.CreateConcurrency, 1))
}

// startNodes starts the processes that hold the connections: this one, or
// cfg.Procs children sharing the connections evenly.
func startNodes(ctx context.Context, cfg *Config, plan *Plan, tokens *tokenSource) ([]node, func(), error) {
	if cfg.Procs == 0 {
		w, err := newWorker(cfg, plan, 0, plan.Conns, tokens)
		if err != nil {
			return nil, nil, err
		}
		return []node{&localNode{w: w}}, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "natter-bench-run-")
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, "run.json")
	data, err := json.Marshal(childRun{Config: *cfg, Plan: plan, Procs: cfg.Procs})
	if err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	children := make([]*childNode, cfg.Procs)
	errs := make([]error, cfg.Procs)
	var wg sync.WaitGroup
	for i := range children {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			children[i], errs[i] = startChild(ctx, path, i, cfg.Stderr)
		}(i)
	}
	wg.Wait()
	cleanup := func() {
		for _, c := range children {
			if c != nil {
				c.kill()
			}
		}
		os.RemoveAll(dir)
	}
	if err := errors.Join(errs...); err != nil {
		cleanup()
		return nil, nil, err
	}
	nodes := make([]node, len(children))
	for i, c := range children {
		nodes[i] = c
	}
	return nodes, cleanup, nil
}

// runner runs one bench over its nodes.
type runner struct {
	cfg    *Config
	plan   *Plan
	nodes  []node
	res    *Result
	tokens *tokenSource

	winStart, winEnd time.Time
	cpu0             map[int]float64
}

// all runs a step on every node at once and returns when all are done.
func (r *runner) all(ctx context.Context, cmd string, arg int64) error {
	errs := make([]error, len(r.nodes))
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Add(1)
		go func(i int, n node) {
			defer wg.Done()
			errs[i] = n.do(ctx, cmd, arg)
		}(i, n)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *runner) progress() Progress {
	var p Progress
	for _, n := range r.nodes {
		p.add(n.progress())
	}
	return p
}

// ticker prints a progress line every second until until returns true or the
// deadline passes; it reports whether until returned true.
func (r *runner) ticker(ctx context.Context, label string, deadline time.Time, until func(Progress) bool) bool {
	last := r.progress()
	lastT := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	nextPrint := lastT.Add(time.Second)
	start := time.Now()
	for {
		p := r.progress()
		if until != nil && until(p) {
			return true
		}
		now := time.Now()
		if !now.Before(deadline) {
			return false
		}
		if !now.Before(nextPrint) {
			dt := now.Sub(lastT).Seconds()
			fmt.Fprintf(r.cfg.Stderr, "[%-7s %5.1fs] conns %d  sent %.0f/s  acked %.0f/s  delivered %.0f/s  p99 %.1fms  errors %d  (delivered %d/%d)\n",
				label, now.Sub(start).Seconds(), p.Conns, float64(p.Sent-last.Sent)/dt, float64(p.Acked-last.Acked)/dt,
				float64(p.Delivered-last.Delivered)/dt, p.P99Ms, p.errorTotal(), p.Delivered, p.Expected)
			last, lastT = p, now
			nextPrint = now.Add(time.Second)
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

func (r *runner) connect(ctx context.Context) error {
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.all(ctx, "connect", 0) }()
	for {
		select {
		case err := <-done:
			r.res.ConnectTime = time.Since(t0).Seconds()
			p := r.progress()
			fmt.Fprintf(r.cfg.Stderr, "bench: %d connections open (%d failed) in %.1fs\n", p.Conns, p.DialFailed, r.res.ConnectTime)
			return err
		case <-time.After(time.Second):
			p := r.progress()
			fmt.Fprintf(r.cfg.Stderr, "[connect %5.1fs] conns %d/%d  failed %d\n", time.Since(t0).Seconds(), p.Conns, r.cfg.Conns, p.DialFailed)
		}
	}
}

// load: connect, send on schedule through warm-up and the window, drain.
// largeGroup is load for the largegroup mode, with the offline members'
// notifications timed from the first send (largegroup.go).
func (r *runner) largeGroup(ctx context.Context) error {
	w, err := r.watchNotifications()
	if err != nil {
		return err
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	r.sampleServer(ctx, "connected")
	r.heapPerMember() // largegroup.go
	if w != nil {
		w.started(r)
	}
	start := time.Now().Add(300 * time.Millisecond) // send's first due time
	if err := r.send(ctx, r.cfg.Warmup, r.cfg.Duration, true); err != nil {
		return err
	}
	if w != nil {
		w.wait(ctx, r, start, r.cfg.NotifyTimeout)
	}
	return nil
}

func (r *runner) load(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		return err
	}
	r.sampleServer(ctx, "connected")
	if err := r.send(ctx, r.cfg.Warmup, r.cfg.Duration, true); err != nil {
		return err
	}
	if r.cfg.Mode == "load" {
		r.sampleServer(ctx, "end") // connections still open: comparable with connected
	}
	return nil
}

// send runs the senders (warm-up, then the window), then waits for the
// deliveries; profile says whether to profile and time the window.
func (r *runner) send(ctx context.Context, warmup, window time.Duration, profile bool) error {
	at := time.Now().Add(300 * time.Millisecond)
	r.winStart = at.Add(warmup)
	r.winEnd = r.winStart.Add(window)
	var pwg sync.WaitGroup
	if profile {
		pwg.Add(1)
		go func() { defer pwg.Done(); r.profileWindow(ctx) }()
	}
	var samples []ServerSample
	var sampleNotes []string
	if profile && r.cfg.SampleEvery > 0 {
		pwg.Add(1)
		go func() { defer pwg.Done(); samples, sampleNotes = r.sampleDuring(ctx, at, r.winEnd) }()
	}
	if err := r.all(ctx, "start", at.UnixNano()); err != nil {
		return err
	}
	r.ticker(ctx, "send", r.winEnd, nil)
	if err := r.all(ctx, "wait", 0); err != nil {
		return err
	}
	pwg.Wait()
	r.res.Server = append(r.res.Server, samples...)
	r.res.Notes = append(r.res.Notes, sampleNotes...)
	drained := r.ticker(ctx, "drain", time.Now().Add(r.cfg.DrainTimeout), func(p Progress) bool {
		return p.Delivered >= p.Expected && p.Acked+p.Failed >= p.Sent
	})
	if !drained {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("deliveries still missing after --drain-timeout %s", r.cfg.DrainTimeout))
	}
	if profile && r.cfg.NATSURL != "" {
		r.checkPersisted(ctx)
	}
	return nil
}

// profileWindow samples CPU times at the window's edges and takes the profiles.
func (r *runner) profileWindow(ctx context.Context) {
	if !sleepUntil(ctx, r.winStart) {
		return
	}
	r.cpu0 = r.cpuSample()
	var fetch sync.WaitGroup
	cpuLocal := false
	if r.cfg.CPUProfile != "" {
		if r.cfg.PprofURL != "" {
			fetch.Add(1)
			go func() {
				defer fetch.Done()
				secs := max(int(r.cfg.Duration.Seconds()), 1)
				r.fetchProfile(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), r.cfg.CPUProfile)
			}()
		} else if f, err := os.Create(r.cfg.CPUProfile); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				cpuLocal = true
				defer f.Close()
			} else {
				f.Close()
			}
		}
	}
	if !sleepUntil(ctx, r.winEnd) {
		return
	}
	if cpuLocal {
		pprof.StopCPUProfile()
		r.res.Profiles = append(r.res.Profiles, "cpu: "+r.cfg.CPUProfile+" (this process)")
	}
	r.res.CPU = r.cpuReport(r.cpu0, r.cpuSample(), r.winEnd.Sub(r.winStart).Seconds())
	if r.cfg.MemProfile != "" {
		if r.cfg.PprofURL != "" {
			r.fetchProfile(ctx, "/debug/pprof/heap", r.cfg.MemProfile)
		} else if f, err := os.Create(r.cfg.MemProfile); err == nil {
			runtime.GC()
			_ = pprof.WriteHeapProfile(f)
			f.Close()
			r.res.Profiles = append(r.res.Profiles, "heap: "+r.cfg.MemProfile+" (this process)")
		}
	}
	fetch.Wait()
}

func (r *runner) fetchProfile(ctx context.Context, path, file string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(r.cfg.PprofURL, "/")+path, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.res.Notes = append(r.res.Notes, "profile "+path+": "+err.Error())
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err == nil {
		r.res.Profiles = append(r.res.Profiles, file+" (from "+r.cfg.PprofURL+path+")")
	}
}

// cpuSample reads the CPU seconds of this process, the children and the gateway.
func (r *runner) cpuSample() map[int]float64 {
	out := map[int]float64{}
	self, _ := selfUsage()
	out[os.Getpid()] = self
	for _, n := range r.nodes {
		if pid := n.pid(); pid != os.Getpid() {
			out[pid], _ = procCPU(pid)
		}
	}
	for _, pid := range r.cfg.GatewayPIDs {
		if pid != os.Getpid() {
			if v, err := procCPU(pid); err == nil {
				out[pid] = v
			}
		}
	}
	return out
}

func (r *runner) cpuReport(a, b map[int]float64, window float64) *CPUReport {
	self := os.Getpid()
	c := &CPUReport{WindowS: window, ServerS: -1, LoadgenS: -1}
	d := func(pid int) float64 { return b[pid] - a[pid] }
	switch {
	case r.cfg.Procs == 0 && r.cfg.Embedded && (len(r.cfg.GatewayPIDs) == 0 || r.serverInProc()):
		c.CombinedS = d(self)
		return c
	case r.cfg.Procs == 0:
		c.LoadgenS = d(self)
	default:
		c.LoadgenS = 0
		for _, n := range r.nodes {
			c.LoadgenS += d(n.pid())
		}
		if !r.serverInProc() {
			c.LoadgenS += d(self) // the coordinator
		}
	}
	if len(r.cfg.GatewayPIDs) > 0 {
		c.ServerS = 0
		for _, pid := range r.cfg.GatewayPIDs {
			c.ServerS += d(pid)
		}
	}
	if c.ServerS >= 0 && c.LoadgenS >= 0 && c.ServerS+c.LoadgenS > 0 {
		c.LoadgenShare = c.LoadgenS / (c.ServerS + c.LoadgenS)
	}
	return c
}

// idle: open the connections, hold them, and report the gateway's RSS per
// connection (read from /proc; an in-process gateway is garbage-collected first).
func (r *runner) idle(ctx context.Context) error {
	pids := r.serverPIDs()
	ir := &IdleResult{Source: "none: give --gateway-pid, or --embedded with --procs", PIDs: pids}
	inProc := r.serverInProc()
	switch {
	case inProc:
		ir.Source = "this process (embedded natter)"
		if r.cfg.Procs == 0 {
			ir.Source += "; includes the load generator's connections: use --procs to separate them"
		}
	case len(pids) > 0:
		parts := make([]string, len(pids))
		for i, pid := range pids {
			parts[i] = fmt.Sprintf("/proc/%d", pid)
		}
		ir.Source = strings.Join(parts, " + ")
	}
	var ms0 runtime.MemStats
	measure := func(ms *runtime.MemStats) (sum int64, per []int64) {
		if inProc {
			runtime.GC()
			debug.FreeOSMemory()
			runtime.ReadMemStats(ms)
		}
		for _, pid := range pids {
			v, _ := procRSS(pid)
			sum += v
			per = append(per, v)
		}
		return sum, per
	}
	ir.RSSBefore, ir.RSSBeforePerPID = measure(&ms0)
	ir.Goroutines = runtime.NumGoroutine()
	var before ServerSample
	if len(r.cfg.MetricsURLs) > 0 {
		before = r.sampleServer(ctx, "start")
		ir.Goroutines = before.Goroutines
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	p := r.progress()
	time.Sleep(2 * time.Second) // let the server settle (subscriptions, presence)
	var ms1 runtime.MemStats
	ir.RSSAfter, ir.RSSAfterPerPID = measure(&ms1)
	ir.GoroutinesA = runtime.NumGoroutine()
	if len(r.cfg.MetricsURLs) > 0 {
		after := r.sampleServer(ctx, "connected")
		ir.GoroutinesA = after.Goroutines
		if p.Conns > 0 {
			ir.HeapPerConn = float64(after.HeapInuse-before.HeapInuse) / float64(p.Conns)
			ir.PerConnGor = float64(after.Goroutines-before.Goroutines) / float64(p.Conns)
		}
	}
	if p.Conns > 0 {
		ir.PerConn = float64(ir.RSSAfter-ir.RSSBefore) / float64(p.Conns)
		if inProc {
			ir.HeapPerConn = float64(int64(ms1.HeapInuse+ms1.StackInuse)-int64(ms0.HeapInuse+ms0.StackInuse)) / float64(p.Conns)
			ir.PerConnGor = float64(ir.GoroutinesA-ir.Goroutines) / float64(p.Conns)
		}
		if len(pids) == len(r.cfg.URLs) && len(pids) > 1 {
			// Connection i goes to URL i mod len: process k holds its share.
			for k := range pids {
				n := connsOfURL(int(p.Conns), len(pids), k)
				ir.PerConnPerPID = append(ir.PerConnPerPID, float64(ir.RSSAfterPerPID[k]-ir.RSSBeforePerPID[k])/float64(max(n, 1)))
			}
		}
	}
	fmt.Fprintf(r.cfg.Stderr, "bench: %d connections, gateway RSS %.1f → %.1f MiB (%.1f KB per connection); holding for %s\n",
		p.Conns, mib(ir.RSSBefore), mib(ir.RSSAfter), ir.PerConn/1000, r.cfg.Duration)
	r.winStart = time.Now()
	r.winEnd = r.winStart.Add(r.cfg.Duration)
	r.cpu0 = r.cpuSample()
	if r.cfg.MemProfile != "" && inProc {
		if f, err := os.Create(r.cfg.MemProfile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
			r.res.Profiles = append(r.res.Profiles, "heap: "+r.cfg.MemProfile+" (this process)")
		}
	} else if r.cfg.MemProfile != "" && r.cfg.PprofURL != "" {
		r.fetchProfile(ctx, "/debug/pprof/heap", r.cfg.MemProfile)
	}
	r.ticker(ctx, "hold", r.winEnd, nil)
	r.res.CPU = r.cpuReport(r.cpu0, r.cpuSample(), r.cfg.Duration.Seconds())
	var ms2 runtime.MemStats
	ir.RSSEnd, _ = measure(&ms2)
	r.res.Idle = ir
	return nil
}

// resume: connect with seq tracking, send a little so every chat has history,
// disconnect everyone at once, post --offline messages per chat meanwhile, then
// reconnect everyone with resume and sync, and wait until each client has every
// message up to what was posted.
func (r *runner) resume(ctx context.Context) error {
	if err := r.all(ctx, "track", 0); err != nil {
		return err
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	if err := r.send(ctx, 0, r.cfg.Duration, false); err != nil {
		return err
	}
	if err := r.all(ctx, "prepare", int64(r.cfg.OfflineMsgs)); err != nil {
		return err
	}
	if err := r.all(ctx, "disconnect", 0); err != nil {
		return err
	}
	fmt.Fprintf(r.cfg.Stderr, "bench: all disconnected; posting %d messages to each of %d chats\n", r.cfg.OfflineMsgs, len(r.plan.Chats))
	if err := r.postOffline(ctx); err != nil {
		return err
	}
	at := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.all(ctx, "reconnect", at.UnixNano()) }()
	total := int64(r.cfg.Conns)
	complete := r.ticker(ctx, "resume", at.Add(r.cfg.DrainTimeout+time.Minute), func(p Progress) bool { return p.Resumed >= total })
	if err := <-done; err != nil {
		return err
	}
	if !complete {
		r.res.Notes = append(r.res.Notes, "some clients did not complete their resume in time")
	}
	r.res.Resume = &ResumeResult{Offline: r.cfg.OfflineMsgs}
	return nil
}

// postOffline posts the offline messages through the REST API, as each chat's
// first member.
func (r *runner) postOffline(ctx context.Context) error {
	base, err := httpBase(r.cfg.URLs[0])
	if err != nil {
		return err
	}
	rc := &restClient{base: base, tokens: r.tokens, client: &http.Client{Timeout: 60 * time.Second}}
	work := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for k := 0; k < 32; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				c := r.plan.Chats[j]
				for m := 0; m < r.cfg.OfflineMsgs; m++ {
					body := map[string]any{"messageId": fmt.Sprintf("o%s-%d-%d", r.plan.Run, j, m), "content": "offline"}
					if err := rc.do(ctx, http.MethodPost, "/api/v1/chats/"+c.ID+"/messages", r.plan.Users[c.Members[0]], body, nil); err != nil {
						select {
						case errc <- err:
						default:
						}
						return
					}
				}
			}
		}()
	}
	for j := range r.plan.Chats {
		work <- j
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return fmt.Errorf("bench: post offline messages: %w", err)
	default:
		return nil
	}
}

// collect finishes every node and merges their parts into the result.
func (r *runner) collect(ctx context.Context) error {
	parts := make([]Part, len(r.nodes))
	errs := make([]error, len(r.nodes))
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Add(1)
		go func(i int, n node) {
			defer wg.Done()
			parts[i], errs[i] = n.finish(ctx)
		}(i, n)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var p Progress
	var deliver, ack, lag, resume, connect Histogram
	res := r.res
	var sentWin, ackedWin, delWin int64
	for _, pt := range parts {
		p.add(pt.Progress)
		deliver.Merge(histogramFrom(pt.Deliver))
		ack.Merge(histogramFrom(pt.Ack))
		lag.Merge(histogramFrom(pt.Lag))
		resume.Merge(histogramFrom(pt.Resume))
		connect.Merge(histogramFrom(pt.Connect))
		sentWin += pt.SentWin
		ackedWin += pt.AckedWin
		delWin += pt.DeliveredWin
		if res.Resume != nil {
			res.Resume.Dupes += pt.Dupes
			res.Resume.Gaps += pt.Gaps
			res.Resume.Incomplete += pt.Incomplete
		}
	}
	res.Connected, res.DialFailed = p.Conns, p.DialFailed
	res.Sent, res.Acked, res.Delivered, res.Expected, res.Failed = p.Sent, p.Acked, p.Delivered, p.Expected, p.Failed
	res.Missing = max(p.Expected-p.Delivered, 0)
	if p.Errors != nil {
		res.Errors = p.Errors
	}
	res.Latency, res.Ack, res.SendLag, res.Connect = deliver.Summary(), ack.Summary(), lag.Summary(), connect.Summary()
	if w := r.cfg.Duration.Seconds(); w > 0 && (r.cfg.Mode == "load" || r.cfg.Mode == "fanout" || r.cfg.Mode == "largegroup" || r.cfg.Mode == "resume") {
		res.SentPerSec, res.AckedPerSec, res.DeliveredPerSec = float64(sentWin)/w, float64(ackedWin)/w, float64(delWin)/w
	}
	if res.Baseline != nil && res.Baseline.PerSec > 0 {
		res.Ratio = res.AckedPerSec / res.Baseline.PerSec
	}
	res.OK = len(res.Errors) == 0 && res.DialFailed == 0 && res.Failed == 0 && res.Missing == 0 && res.Delivered == res.Expected
	if res.Resume != nil {
		res.Resume.Clients = p.Conns
		res.Resume.Resumed = p.Resumed
		res.Resume.Time = resume.Summary()
		res.Resume.TotalS = resume.Max().Seconds()
		res.OK = res.OK && res.Resume.Incomplete == 0 && res.Resume.Dupes == 0 && res.Resume.Gaps == 0 && p.Resumed == p.Conns
	}
	if (res.Persisted != nil && !*res.Persisted) || (res.Notified != nil && !*res.Notified) {
		res.OK = false
	}
	if r.cfg.Mode == "idle" {
		res.OK = len(res.Errors) == 0 && res.DialFailed == 0
	}
	if lg := res.LargeGroup; lg != nil && lg.NotifyNote == "" && lg.Notified < lg.NotifyWant {
		res.OK = false
	}
	return nil
}

// connsOfURL returns how many of conns connections go to URL k of n (connection i
// uses URL i mod n).
func connsOfURL(conns, n, k int) int {
	c := conns / n
	if k < conns%n {
		c++
	}
	return c
}

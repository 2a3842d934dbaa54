package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Result is what a run measured. Rates are per second of the measurement window;
// latencies are in milliseconds.
type Result struct {
	Mode     string  `json:"mode"`
	Run      string  `json:"run"`
	Conns    int     `json:"conns"`
	Users    int     `json:"users"`
	Chats    int     `json:"chats"`
	ChatSize int     `json:"chatSize"`
	Rate     float64 `json:"targetRate"`
	Duration float64 `json:"durationS"`
	Warmup   float64 `json:"warmupS"`
	Size     int     `json:"size"`
	Procs    int     `json:"procs"`
	Gateways int     `json:"gateways"`

	Connected   int64   `json:"connected"`
	DialFailed  int64   `json:"dialFailed"`
	ConnectTime float64 `json:"connectS"` // time to open every connection
	Connect     Summary `json:"connectLatency"`

	Sent      int64 `json:"sent"`
	Acked     int64 `json:"acked"`
	Delivered int64 `json:"delivered"`
	Expected  int64 `json:"expectedDeliveries"`
	Failed    int64 `json:"failed"`
	Missing   int64 `json:"missing"`

	SentPerSec      float64 `json:"sentPerSec"`
	AckedPerSec     float64 `json:"ackedPerSec"`
	DeliveredPerSec float64 `json:"deliveredPerSec"`

	Latency Summary          `json:"latency"` // send (due) to delivery, every recipient
	Ack     Summary          `json:"ackLatency"`
	SendLag Summary          `json:"sendLag"` // how late sends left against their schedule
	Errors  map[string]int64 `json:"errors"`

	// CPU seconds used during the measurement window, and cores (seconds/s).
	CPU *CPUReport `json:"cpu,omitempty"`

	PersistCatchup float64 `json:"persistCatchupS,omitempty"` // after sending stopped, until the persister had everything
	Persisted      *bool   `json:"persisted,omitempty"`
	// NotifyCatchup and Notified are the same for the notifiers' consumer (absent
	// when no notifier runs): a notifier that kept up with the load catches up at once.
	NotifyCatchup float64 `json:"notifyCatchupS,omitempty"`
	Notified      *bool   `json:"notified,omitempty"`

	Baseline *BaselineResult `json:"baseline,omitempty"`
	// Ratio is acked messages/s over the baseline's publishes/s.
	Ratio float64 `json:"ratio,omitempty"`

	// Server is the server processes' memory through the run (load and resume).
	Server []ServerSample `json:"server,omitempty"`
	// ChatsTouched is how many distinct chats the sends reached, expected value
	// for sends to random chats: chats × (1 − (1 − 1/chats)^sent).
	ChatsTouched float64 `json:"chatsTouched,omitempty"`
	// CreateS is how long creating the chats took, CreateVia how (rest or store).
	CreateS   float64 `json:"createS,omitempty"`
	CreateVia string  `json:"createVia,omitempty"`

	Idle       *IdleResult       `json:"idle,omitempty"`
	LargeGroup *LargeGroupResult `json:"largeGroup,omitempty"`
	Resume     *ResumeResult     `json:"resume,omitempty"`
	Publish    *PublishResult    `json:"publish,omitempty"`

	Profiles []string `json:"profiles,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	// OK: every expected delivery arrived, nothing failed, no errors.
	OK bool `json:"ok"`
}

// CPUReport splits the CPU time of the window between the server and the load
// generator, when they run in different processes.
type CPUReport struct {
	WindowS      float64 `json:"windowS"`
	ServerS      float64 `json:"serverS"`      // -1: unknown
	LoadgenS     float64 `json:"loadgenS"`     // -1: unknown
	CombinedS    float64 `json:"combinedS"`    // server and load generator in one process
	LoadgenShare float64 `json:"loadgenShare"` // of all CPU used, 0..1
	// CaughtUpS is the server's CPU seconds (CombinedS's process when they share
	// one) from the window's start until the persisters and notifiers had caught up
	// after sending stopped: the work the window's messages caused, also what a role
	// that fell behind did only afterwards. 0: not measured.
	CaughtUpS float64 `json:"caughtUpS,omitempty"`
}

// BaselineResult is the raw JetStream publish rate.
type BaselineResult struct {
	Published   int64   `json:"published"`
	PerSec      float64 `json:"perSec"`
	PayloadSize int     `json:"payloadBytes"`
	Seconds     float64 `json:"seconds"`
}

// IdleResult is the memory a gateway holds per idle connection.
type IdleResult struct {
	RSSBefore int64 `json:"rssBeforeBytes"`
	RSSAfter  int64 `json:"rssAfterBytes"`
	RSSEnd    int64 `json:"rssEndBytes"`
	// Per process, in --gateway-pid order (several server processes).
	RSSBeforePerPID []int64   `json:"rssBeforePerPidBytes,omitempty"`
	RSSAfterPerPID  []int64   `json:"rssAfterPerPidBytes,omitempty"`
	PerConnPerPID   []float64 `json:"rssPerConnPerPidBytes,omitempty"` // by the connections of each process's URL
	PIDs            []int     `json:"pids,omitempty"`
	PerConn         float64   `json:"rssPerConnBytes"`
	HeapPerConn     float64   `json:"heapPerConnBytes,omitempty"` // in-process server only
	Goroutines      int       `json:"goroutinesBefore,omitempty"`
	GoroutinesA     int       `json:"goroutinesAfter,omitempty"`
	PerConnGor      float64   `json:"goroutinesPerConn,omitempty"`
	Source          string    `json:"source"`
}

// ResumeResult is a resume storm.
type ResumeResult struct {
	Clients    int64   `json:"clients"`
	Resumed    int64   `json:"resumed"`
	Incomplete int64   `json:"incomplete"` // lost something: never reached the expected seq
	Dupes      int64   `json:"duplicates"`
	Gaps       int64   `json:"gaps"`
	Offline    int     `json:"offlinePerChat"`
	TotalS     float64 `json:"totalS"` // reconnect start until the last client had everything
	Time       Summary `json:"perClient"`
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}

// WriteTable writes r as a human table.
func (r *Result) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
	row("mode", "%s (run %s)", r.Mode, r.Run)
	if r.Mode != "baseline" && r.Mode != "publish" {
		row("shape", "%d conns, %d users, %d chats of %d, %d procs, %d gateways", r.Conns, r.Users, r.Chats, r.ChatSize, r.Procs, r.Gateways)
		row("connected", "%d (%d failed) in %.2fs; dial p50 %.1fms p99 %.1fms", r.Connected, r.DialFailed, r.ConnectTime, r.Connect.P50, r.Connect.P99)
	}
	if r.Mode == "load" || r.Mode == "fanout" || r.Mode == "largegroup" || r.Mode == "resume" {
		row("window", "%.1fs after %.1fs warm-up; target %.0f msg/s, %d B content", r.Duration, r.Warmup, r.Rate, r.Size)
		row("messages", "sent %d, acked %d, failed %d", r.Sent, r.Acked, r.Failed)
		row("deliveries", "%d of %d expected (missing %d)", r.Delivered, r.Expected, r.Missing)
		row("throughput", "sent %.0f/s, acked %.0f/s, delivered %.0f/s", r.SentPerSec, r.AckedPerSec, r.DeliveredPerSec)
		lat := func(name string, s Summary) {
			row(name, "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms  (n=%d)", s.P50, s.P90, s.P99, s.P999, s.Max, s.Count)
		}
		lat("send→deliver", r.Latency)
		lat("send→ack", r.Ack)
		lat("send lag", r.SendLag)
	}
	if p := r.Publish; p != nil {
		row("shape", "%d chats of %d, %d publishers, batches of %d, %d B content", r.Chats, r.ChatSize, p.Publishers, p.Batch, r.Size)
		row("window", "%.1fs after %.1fs warm-up, as fast as the answers come", r.Duration, r.Warmup)
		row("messages", "published %d, acked %d, failed %d", r.Sent, r.Acked, r.Failed)
		row("throughput", "acked (sequenced) %.0f msg/s in %d batches", r.AckedPerSec, p.Batches)
		row("batch→answered", "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms  (n=%d)", p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.P999, p.Latency.Max, p.Latency.Count)
		if p.ServerCPUPerMsgUs > 0 && p.CPUNote != "" {
			row("cpu per msg", "%.0f µs (%s)", p.ServerCPUPerMsgUs, p.CPUNote)
		} else if p.ServerCPUPerMsgUs > 0 {
			row("cpu per msg", "%.0f µs of server CPU", p.ServerCPUPerMsgUs)
		}
		if p.CaughtUpCPUPerMsgUs > 0 {
			row("… until caught up", "%.0f µs per msg: the server's CPU from the window's start until the persister and notifier had caught up", p.CaughtUpCPUPerMsgUs)
		}
	}
	switch {
	case r.CreateVia != "" && r.ChatsTouched > 0: // estimated in load mode only
		row("chats", "%d created via %s in %.1fs; sends reached ≈ %.0f distinct chats", r.Chats, r.CreateVia, r.CreateS, r.ChatsTouched)
	case r.CreateVia != "":
		row("chats", "%d created via %s in %.1fs", r.Chats, r.CreateVia, r.CreateS)
	}
	for _, s := range r.Server {
		row("server "+s.At, "RSS %.1f MiB, Go heap %.1f MiB, %d goroutines%s", mib(s.RSS), mib(s.HeapInuse), s.Goroutines, perPID(s.RSSPerPID))
	}
	if r.Persisted != nil {
		row("persisted", "%v (caught up %.2fs after sending stopped)", *r.Persisted, r.PersistCatchup)
	}
	if r.Notified != nil {
		row("notifier", "%v (caught up %.2fs after sending stopped)", *r.Notified, r.NotifyCatchup)
	}
	if r.Baseline != nil {
		row("baseline", "%.0f JetStream publishes/s (%d B payload, %.1fs)", r.Baseline.PerSec, r.Baseline.PayloadSize, r.Baseline.Seconds)
	}
	if r.Ratio > 0 {
		row("ratio", "%.3f (acked msg/s ÷ baseline publishes/s)", r.Ratio)
	}
	if r.CPU != nil {
		c := r.CPU
		if c.CombinedS > 0 {
			row("cpu", "%.1f cores (server and load generator in one process)", c.CombinedS/c.WindowS)
		} else {
			row("cpu", "server %.2f cores, load generator %.2f cores (share %.0f%%)", c.ServerS/c.WindowS, c.LoadgenS/c.WindowS, 100*c.LoadgenShare)
		}
		if acked := r.AckedPerSec * r.Duration; c.CaughtUpS > 0 && r.Publish == nil && acked > 0 {
			row("cpu until caught up", "%.2f s from the window's start until the persister and notifier had caught up: %.0f µs per message acked in the window",
				c.CaughtUpS, c.CaughtUpS/acked*1e6)
		}
	}
	if i := r.Idle; i != nil {
		row("gateway rss", "%.1f MiB before, %.1f MiB with connections, %.1f MiB at end (%s)", mib(i.RSSBefore), mib(i.RSSAfter), mib(i.RSSEnd), i.Source)
		row("per connection", "%.1f KB RSS", i.PerConn/1000)
		for k, pid := range i.PIDs {
			if k < len(i.RSSAfterPerPID) && k < len(i.PerConnPerPID) {
				row("", "pid %d: %.1f → %.1f MiB, %.1f KB per connection of its URL", pid, mib(i.RSSBeforePerPID[k]), mib(i.RSSAfterPerPID[k]), i.PerConnPerPID[k]/1000)
			}
		}
		if i.HeapPerConn > 0 {
			row("", "%.1f KB Go heap+stacks, %.2f goroutines (%d → %d)", i.HeapPerConn/1000, i.PerConnGor, i.Goroutines, i.GoroutinesA)
		}
	}
	if g := r.LargeGroup; g != nil {
		row("large group", "%d members (%d connected) built with %d bulk adds in %.1fs (%.0f members/s)", g.GroupSize, g.Connected, g.AddCalls, g.CreateS, g.AddsPerSec)
		row("notified", "%d of %d offline members; first %.2fs, all %.2fs after the first send", g.Notified, g.NotifyWant, g.NotifyFirst, g.NotifyAllS)
		if g.NewestSeq > 0 && g.Notified > 0 {
			row("", "%d of %d notified of the newest message (seq %d), all %.2fs after the first send; %d notifications in all",
				g.NotifiedNewest, g.NotifyWant, g.NewestSeq, g.NotifyNewestS, g.Notifications)
		}
		if g.NotifyCPUS > 0 && g.Notified > 0 {
			row("", "server CPU from the first send until then %.2fs (all of it: the passes, the deliveries, the connected members' presence)", g.NotifyCPUS)
		}
		if g.HeapPerMember != 0 {
			row("memory", "server Go heap %.0f B per member (created − start, after GC)", g.HeapPerMember)
		}
		if g.NotifiedConnected > 0 {
			row("", "%d connected members notified too (the notifier's presence view lagged their connection)", g.NotifiedConnected)
		}
		if g.NotifyNote != "" {
			row("", "%s", g.NotifyNote)
		}
	}
	if s := r.Resume; s != nil {
		row("resume", "%d of %d clients complete in %.2fs (incomplete %d, duplicates %d, gaps %d; %d offline msgs/chat)",
			s.Resumed, s.Clients, s.TotalS, s.Incomplete, s.Dupes, s.Gaps, s.Offline)
		row("per client", "p50 %.0f  p90 %.0f  p99 %.0f  max %.0f ms", s.Time.P50, s.Time.P90, s.Time.P99, s.Time.Max)
	}
	row("errors", "%s", formatErrors(r.Errors))
	for _, p := range r.Profiles {
		row("profile", "%s", p)
	}
	for _, n := range r.Notes {
		row("note", "%s", n)
	}
	row("ok", "%v", r.OK)
	tw.Flush()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func perPID(v []int64) string {
	if len(v) < 2 {
		return ""
	}
	parts := make([]string, len(v))
	for i, b := range v {
		parts[i] = fmt.Sprintf("%.1f", mib(b))
	}
	return " (per process: " + strings.Join(parts, " + ") + " MiB)"
}

func formatErrors(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ServerSample is the memory of the server processes at one point of a run: RSS
// from /proc for --gateway-pid (summed, and per process), goroutines and Go heap
// from --metrics-url (summed), or from the runtime when the server is this process.
type ServerSample struct {
	// At names the point: start (before the chats are created), created,
	// connected, end (after the deliveries drained).
	At         string  `json:"at"`
	RSS        int64   `json:"rssBytes"`
	RSSPerPID  []int64 `json:"rssPerPidBytes,omitempty"` // in --gateway-pid order
	HeapInuse  int64   `json:"heapInuseBytes"`           // 0: unknown
	Goroutines int     `json:"goroutines"`               // 0: unknown
}

// serverPIDs returns the server processes: --gateway-pid, or this process for an
// embedded server.
func (r *runner) serverPIDs() []int {
	if len(r.cfg.GatewayPIDs) > 0 {
		return r.cfg.GatewayPIDs
	}
	if r.cfg.Embedded {
		return []int{os.Getpid()}
	}
	return nil
}

// serverInProc reports whether the server is (among) this process.
func (r *runner) serverInProc() bool {
	if !r.cfg.Embedded {
		return false
	}
	for _, pid := range r.serverPIDs() {
		if pid == os.Getpid() {
			return true
		}
	}
	return false
}

// sampleServer takes a ServerSample named at and appends it to the result. The
// server is garbage-collected first (in process, or through its pprof endpoint next
// to --metrics-url), so the heap is what is live.
func (r *runner) sampleServer(ctx context.Context, at string) ServerSample {
	if len(r.serverPIDs()) == 0 && len(r.cfg.MetricsURLs) == 0 {
		return ServerSample{At: at} // nothing to measure: no --gateway-pid, --metrics-url or --embedded
	}
	s, notes := r.takeSample(ctx, at)
	r.res.Notes = append(r.res.Notes, notes...)
	r.res.Server = append(r.res.Server, s)
	fmt.Fprintf(r.cfg.Stderr, "bench: server at %s: RSS %.1f MiB, heap %.1f MiB, %d goroutines\n",
		at, mib(s.RSS), mib(s.HeapInuse), s.Goroutines)
	return s
}

// sampleDuring takes a sample every --sample-every from start until end and
// returns them (named by the time since start, "+30s").
func (r *runner) sampleDuring(ctx context.Context, start, end time.Time) ([]ServerSample, []string) {
	var out []ServerSample
	var notes []string
	if len(r.serverPIDs()) == 0 && len(r.cfg.MetricsURLs) == 0 {
		return nil, nil
	}
	every := r.cfg.SampleEvery
	for t := start.Add(every); !t.After(end); t = t.Add(every) {
		if !sleepUntil(ctx, t) {
			break
		}
		s, n := r.takeSample(ctx, "+"+t.Sub(start).Round(time.Second).String())
		fmt.Fprintf(r.cfg.Stderr, "bench: server at %s: RSS %.1f MiB, heap %.1f MiB, %d goroutines\n",
			s.At, mib(s.RSS), mib(s.HeapInuse), s.Goroutines)
		out, notes = append(out, s), append(notes, n...)
	}
	return out, notes
}

// takeSample measures the server (see sampleServer).
func (r *runner) takeSample(ctx context.Context, at string) (ServerSample, []string) {
	s := ServerSample{At: at}
	var notes []string
	if r.serverInProc() && len(r.cfg.MetricsURLs) == 0 {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapInuse, s.Goroutines = int64(ms.HeapInuse), runtime.NumGoroutine()
	}
	for _, pid := range r.serverPIDs() {
		v, err := procRSS(pid)
		if err != nil {
			notes = append(notes, fmt.Sprintf("rss of %d: %v", pid, err))
		}
		s.RSS += v
		s.RSSPerPID = append(s.RSSPerPID, v)
	}
	for _, u := range r.cfg.MetricsURLs {
		// The heap profile endpoint with gc=1 collects first: the heap read next is
		// what is live, as for an in-process server.
		if base, ok := strings.CutSuffix(u, "/metrics"); ok {
			_ = discardGET(ctx, base+"/debug/pprof/heap?gc=1")
		}
		m, err := scrapeMetrics(ctx, u, "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes")
		if err != nil {
			notes = append(notes, fmt.Sprintf("metrics %s: %v", u, err))
			continue
		}
		s.Goroutines += int(m["go_goroutines"])
		s.HeapInuse += int64(m["go_memstats_heap_inuse_bytes"])
		if len(r.serverPIDs()) == 0 {
			s.RSS += int64(m["process_resident_memory_bytes"])
		}
	}
	return s, notes
}

// scrapeMetrics reads the unlabelled samples named in names from a Prometheus text
// endpoint.
func scrapeMetrics(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body, names...)
}

// parseMetrics returns the values of the unlabelled samples named in names, from
// Prometheus's text format (parsed by prometheus/common's expfmt, which the
// client library that serves them already brings).
func parseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, n := range names {
		for _, m := range fams[n].GetMetric() {
			if len(m.GetLabel()) > 0 {
				continue
			}
			switch {
			case m.Gauge != nil:
				out[n] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[n] = m.GetCounter().GetValue()
			case m.Untyped != nil:
				out[n] = m.GetUntyped().GetValue()
			}
		}
	}
	return out, nil
}

// discardGET GETs url and drops the answer.
func discardGET(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// Package admin is the operator's HTTP endpoint of a natter process, separate from
// the public gateway port: Prometheus metrics, liveness and readiness probes and
// pprof. Bind it to an address only operators and the orchestrator reach.
//
//	GET /metrics          Prometheus text exposition of the process's registry
//	GET /healthz          200 while the process runs (liveness)
//	GET /readyz           200 when every readiness check passes, else 503 with the
//	                      failing checks as JSON (readiness: take traffic or not)
//	GET /debug/pprof/...  Go profiles (CPU, heap, goroutines, ...), only with
//	                      admin.pprof on; never /debug/pprof/cmdline, which would
//	                      show the process's arguments
//
// No route shows configuration: secrets are refused on the command line
// (config.SecretVar), so not even the process's arguments hold one.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Config is the admin section.
type Config struct {
	// Listen is the admin HTTP address; "" disables the admin server. Keep it off
	// the public network: pprof shows the process's internals.
	Listen string `yaml:"listen"`
	// CheckTimeout bounds the readiness checks of one /readyz request.
	CheckTimeout time.Duration `yaml:"check_timeout"`
	// Pprof serves Go profiles under /debug/pprof/. Off by default: profiles
	// show memory contents and internals, and a CPU profile costs CPU.
	Pprof bool `yaml:"pprof"`
	// ReadyMaxPersisterLag is how many messages of NATTER_LOG a persister may
	// have left to persist and still be ready; 0 leaves lag out of readiness.
	ReadyMaxPersisterLag int `yaml:"ready_max_persister_lag"`
}

// RegisterFlags registers the admin.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "admin.listen", "127.0.0.1:9090", "admin HTTP address (/metrics, /healthz, /readyz, /debug/pprof with admin.pprof); empty disables it")
	fs.BoolVar(&c.Pprof, "admin.pprof", false, "serve Go profiles at /debug/pprof/ on the admin address (keep it off the public network)")
	fs.DurationVar(&c.CheckTimeout, "admin.check-timeout", 2*time.Second, "longest /readyz check")
	fs.IntVar(&c.ReadyMaxPersisterLag, "admin.ready-max-persister-lag", 100000, "messages a persister may have left to persist and still be ready; 0: lag is not part of readiness")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("admin: admin.listen %q: %w", c.Listen, err))
		}
	}
	if c.CheckTimeout <= 0 {
		errs = append(errs, errors.New("admin: admin.check-timeout must be > 0"))
	}
	if c.ReadyMaxPersisterLag < 0 {
		errs = append(errs, errors.New("admin: admin.ready-max-persister-lag must be >= 0"))
	}
	return errors.Join(errs...)
}

// Check is one readiness condition: nil when it holds, else why not.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Status is the JSON body of /healthz and /readyz.
type Status struct {
	// Status is "ok" (healthz), "ready" or "unready".
	Status string `json:"status"`
	// Reasons maps each failing check to its error (unready only).
	Reasons map[string]string `json:"reasons,omitempty"`
}

// Server is a running admin server.
type Server struct {
	cfg    Config
	srv    *http.Server
	ln     net.Listener
	log    *zap.Logger
	done   chan struct{}
	mu     sync.Mutex // guards checks
	checks []Check
}

// Start listens on cfg.Listen and serves reg's metrics and the probes until Close.
// It returns (nil, nil) when cfg.Listen is empty.
func Start(cfg Config, reg *prometheus.Registry, log *zap.Logger) (*Server, error) {
	if cfg.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w (is it in use? set admin.listen, or empty to disable)", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, ln: ln, log: log, done: make(chan struct{})}
	s.srv = &http.Server{Handler: s.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", zap.Error(err))
		}
	}()
	return s, nil
}

// Handler returns the admin routes (without a listener, for tests and embedding).
func (s *Server) Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Status{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Pprof {
		// Not pprof.Cmdline: the arguments are configuration, none of an operator's
		// business over HTTP. The index links to it; it answers 404.
		mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/debug/pprof/cmdline" {
				http.NotFound(w, r)
				return
			}
			pprof.Index(w, r)
		})
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// AddCheck adds a readiness check. Safe to call while serving.
func (s *Server) AddCheck(c Check) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, c)
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Ready runs every check (concurrently, bounded by the check timeout) and returns
// the failing ones by name; an empty map means ready.
func (s *Server) Ready(ctx context.Context) map[string]string {
	s.mu.Lock()
	checks := append([]Check(nil), s.checks...)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := map[string]string{}
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc := make(chan error, 1)
			go func() { errc <- c.Check(ctx) }()
			var err error
			select {
			case err = <-errc:
			case <-ctx.Done():
				err = fmt.Errorf("no answer within %s", s.cfg.CheckTimeout)
			}
			if err != nil {
				mu.Lock()
				failed[c.Name] = err.Error()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if failed := s.Ready(r.Context()); len(failed) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, Status{Status: "unready", Reasons: failed})
		return
	}
	writeJSON(w, http.StatusOK, Status{Status: "ready"})
}

// Close stops the server, giving in-flight requests up to five seconds.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

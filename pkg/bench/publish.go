package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/publish"
	"golang.org/x/time/rate"
)

// The publish mode: the backend path. --publishers goroutines publish with
// pkg/publish (PublishBatch of --batch messages, each batch waiting for every
// message's answer from the sequencer: acked means sequenced into NATTER_LOG) into
// the run's chats, round robin, as fast as the answers come, over NATS as the
// backend user. No WebSocket client is connected: the figures are the acked rate,
// each batch's publish→answered latency, and the server's CPU per message.

// PublishResult is what the publish mode measured beyond the common figures.
type PublishResult struct {
	Batch      int     `json:"batch"`
	Publishers int     `json:"publishers"`
	Batches    int64   `json:"batches"` // in the window
	Latency    Summary `json:"batchLatency"`
	// ServerCPUPerMsgUs is the server's CPU per acked message in the window, in
	// microseconds (the combined CPU when the server runs in this process).
	ServerCPUPerMsgUs float64 `json:"serverCpuPerMsgUs,omitempty"`
	CPUNote           string  `json:"cpuNote,omitempty"`
	// CaughtUpCPUPerMsgUs is CPUReport.CaughtUpS per message acked in the window:
	// unlike ServerCPUPerMsgUs it includes the work a role that fell behind (the
	// notifier, mostly) did after the window. 0: not measured.
	CaughtUpCPUPerMsgUs float64 `json:"caughtUpCpuPerMsgUs,omitempty"`
}

// connectBackend connects to cfg.NATSURL as the backend NATS user when the data
// directory holds its generated password (an embedded or local natter), else
// without credentials.
func connectBackend(cfg *Config) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("natter bench publish")}
	if cfg.DataDir != "" {
		if pw, err := natsutil.ReadPasswordFile(natsutil.PasswordFile(natsutil.CredsDir(cfg.DataDir), natsutil.UserBackend)); err == nil {
			opts = append(opts, nats.UserInfo(natsutil.UserBackend, pw), nats.CustomInboxPrefix(natsutil.InboxPrefix(natsutil.UserBackend)))
		}
	}
	return nats.Connect(cfg.NATSURL, opts...)
}

// publishRun runs the publish mode on the run's chats.
func (r *runner) publishRun(ctx context.Context) error {
	cfg := r.cfg
	nc, err := connectBackend(cfg)
	if err != nil {
		return fmt.Errorf("bench: publish: connect %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(4096, 2*cfg.Batch*cfg.Publishers)))
	if err != nil {
		return err
	}
	pub, err := publish.New(js, "", "bench-"+r.plan.Run)
	if err != nil {
		return err
	}
	defer pub.Close()

	at := time.Now().Add(300 * time.Millisecond)
	r.winStart = at.Add(cfg.Warmup)
	r.winEnd = r.winStart.Add(cfg.Duration)
	content := strings.Repeat("x", cfg.Size)
	var (
		lat                  Histogram
		sent, acked, failed  atomic.Int64
		ackedWin, batchesWin atomic.Int64
		errMu                sync.Mutex
		profile, wg          sync.WaitGroup
		chats                = r.plan.Chats
	)
	senderOf := func(c int) string { return r.plan.Users[chats[c].Members[0]] }
	countErr := func(err error) {
		code := "publish"
		var perr *protocol.Error
		switch {
		case errors.Is(err, publish.ErrNoAnswer):
			code = "no_answer"
		case errors.As(err, &perr):
			code = string(perr.Code)
		}
		errMu.Lock()
		r.res.Errors[code]++
		errMu.Unlock()
	}
	publishCtx, endPublish := context.WithCancel(ctx)
	defer endPublish()
	profile.Add(1)
	go func() { defer profile.Done(); r.profileWindow(ctx) }()
	if !sleepUntil(ctx, at) {
		return ctx.Err()
	}
	// With --rate the publishers share a limiter: each batch waits for its messages'
	// tokens, so the total stays at or below the rate however fast answers come.
	var lim *rate.Limiter
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Batch)
	}
	for p := range cfg.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]*protocol.Message, cfg.Batch)
			for k := int64(0); ; k++ {
				if time.Now().After(r.winEnd) || publishCtx.Err() != nil {
					return
				}
				if lim != nil && (lim.WaitN(publishCtx, cfg.Batch) != nil || time.Now().After(r.winEnd)) {
					return
				}
				for i := range batch {
					c := (p + int(k)*cfg.Publishers*cfg.Batch + i*cfg.Publishers) % len(chats)
					batch[i] = &protocol.Message{ChatID: chats[c].ID, SenderID: senderOf(c), Content: content,
						MessageID: r.plan.Run + "-p" + strconv.Itoa(p) + "-" + strconv.FormatInt(k, 36) + "-" + strconv.Itoa(i)}
				}
				t0 := time.Now()
				bctx, cancel := context.WithTimeout(publishCtx, 30*time.Second)
				_, err := pub.PublishBatch(bctx, batch)
				cancel()
				d := time.Since(t0)
				sent.Add(int64(len(batch)))
				ok := int64(len(batch))
				var be *publish.BatchError
				switch {
				case errors.As(err, &be):
					for _, e := range be.Errs {
						if e != nil {
							ok--
							countErr(e)
						}
					}
				case err != nil:
					ok = 0
					countErr(err)
				}
				acked.Add(ok)
				failed.Add(int64(len(batch)) - ok)
				if done := t0.Add(d); !t0.Before(r.winStart) && !done.After(r.winEnd) {
					lat.Record(d)
					ackedWin.Add(ok)
					batchesWin.Add(1)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Second)
	for last, start := int64(0), time.Now(); time.Now().Before(r.winEnd) && ctx.Err() == nil; {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		now := acked.Load()
		fmt.Fprintf(cfg.Stderr, "[publish %5.1fs] acked %d/s  failed %d\n", time.Since(start).Seconds(), now-last, failed.Load())
		last = now
	}
	tick.Stop()
	wg.Wait()
	profile.Wait()
	res := r.res
	res.Sent, res.Acked, res.Failed = sent.Load(), acked.Load(), failed.Load()
	w := cfg.Duration.Seconds()
	res.AckedPerSec = float64(ackedWin.Load()) / w
	res.SentPerSec = res.AckedPerSec
	pr := &PublishResult{Batch: cfg.Batch, Publishers: cfg.Publishers, Batches: batchesWin.Load(), Latency: lat.Summary()}
	if c := res.CPU; c != nil && ackedWin.Load() > 0 {
		switch {
		case c.ServerS >= 0 && len(cfg.GatewayPIDs) > 0:
			pr.ServerCPUPerMsgUs = c.ServerS / float64(ackedWin.Load()) * 1e6
		case c.CombinedS > 0:
			pr.ServerCPUPerMsgUs = c.CombinedS / float64(ackedWin.Load()) * 1e6
			pr.CPUNote = "server and publishers share this process: an upper bound (give --gateway-pid for a separate natter serve)"
		}
	}
	res.Publish = pr
	if cfg.NATSURL != "" {
		r.checkPersisted(ctx)
		if c := res.CPU; c != nil && c.CaughtUpS > 0 && ackedWin.Load() > 0 {
			pr.CaughtUpCPUPerMsgUs = c.CaughtUpS / float64(ackedWin.Load()) * 1e6
		}
	}
	res.OK = len(res.Errors) == 0 && res.Failed == 0 && res.Acked == res.Sent && (res.Persisted == nil || *res.Persisted) &&
		(res.Notified == nil || *res.Notified)
	return nil
}

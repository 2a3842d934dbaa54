// Package metrics holds Natter's Prometheus metrics. A process creates one Metrics
// (pkg/app does) and hands it to its roles; it has its own registry, so there is no
// global state, and pkg/admin serves it at /metrics in the Prometheus text format.
//
// Every method is safe on a nil *Metrics (it does nothing), so roles built without
// metrics (unit tests) need no special case. The hooks the roles call on hot paths
// (FrameIn, FrameOut, Delivered, SequencerStep, ...) do not allocate: label values
// are resolved to counters once, at New, and anything outside the known set of frame
// types and error codes is counted under "other", so a hostile client cannot create
// label values.
//
// The metric names are listed in docs/operations.md ("Metrics").
package metrics

import (
	"bytes"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every Natter metric.
const Namespace = "natter"

// Other is the label value for a frame type or error code outside the known set.
const Other = "other"

// LatencyBuckets are the upper bounds, in seconds, of the latency histograms:
// 0.25 ms to about 8 s, doubling.
var LatencyBuckets = prometheus.ExponentialBuckets(0.00025, 2, 16)

// frameTypes are the frame types counted by name, both directions.
var frameTypes = []string{
	protocol.FrameConnect, protocol.FrameSend, protocol.FrameSync, protocol.FrameHistory,
	protocol.FrameTyping, protocol.FrameDelivered, protocol.FrameRead, protocol.FramePresenceSub,
	protocol.FrameEdit, protocol.FrameDelete, protocol.FrameReact, protocol.FramePing,
	protocol.FrameConnected, protocol.FrameAck, protocol.FrameMessage, protocol.FrameError,
	protocol.FrameReceipt, protocol.FrameTypingIndicator, protocol.FramePresenceUpdate,
	protocol.FramePong, protocol.FrameReconnect, protocol.FrameHistoryResult, protocol.FrameSynced,
}

// errorCodes are the error codes counted by name.
var errorCodes = []protocol.Code{
	protocol.CodeBadRequest, protocol.CodeUnknownType, protocol.CodeInvalidID, protocol.CodeTooLarge,
	protocol.CodeUnauthorized, protocol.CodeTokenExpired, protocol.CodeForbidden, protocol.CodeNotMember,
	protocol.CodeNotFound, protocol.CodeConflict, protocol.CodeRateLimited, protocol.CodeSlowConsumer,
	protocol.CodeUnavailable, protocol.CodeInternal, protocol.CodeShuttingDown,
}

// Metrics is one process's metrics. Create it with New.
type Metrics struct {
	// Registry holds every metric of the process, Go runtime and process metrics
	// included. pkg/admin serves it.
	Registry *prometheus.Registry

	framesIn  counterSet
	framesOut counterSet
	errors    counterSet
	sendAck   prometheus.Histogram
	deliver   prometheus.Histogram

	stepOK      prometheus.Observer
	stepFailed  prometheus.Observer
	ingressWait prometheus.Histogram

	batchSize prometheus.Histogram
	storeOps  map[string]prometheus.Observer
	storeErrs map[string]prometheus.Counter

	ingressBatch       prometheus.Histogram
	ingressBatchFailed prometheus.Counter
}

// New returns metrics registered on a new registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: r}
	hist := func(sub, name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: sub, Name: name, Help: help, Buckets: buckets})
		r.MustRegister(h)
		return h
	}
	types := make([]string, 0, len(frameTypes))
	types = append(types, frameTypes...)
	framesIn := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "gateway", Name: "frames_in_total",
		Help: "WebSocket frames received from clients, by frame type (unknown types count as other)."}, []string{"type"})
	framesOut := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "gateway", Name: "frames_out_total",
		Help: "WebSocket frames written to clients, by frame type."}, []string{"type"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "errors_total",
		Help: "Error frames sent to clients, by stable error code (see docs/protocol.md)."}, []string{"code"})
	r.MustRegister(framesIn, framesOut, errs)
	m.framesIn = newCounterSet(framesIn, types)
	m.framesOut = newCounterSet(framesOut, types)
	codes := make([]string, len(errorCodes))
	for i, c := range errorCodes {
		codes[i] = string(c)
	}
	m.errors = newCounterSet(errs, codes)
	m.sendAck = hist("gateway", "send_ack_seconds",
		"From a send frame read by the gateway to its ack: validation, membership and the JetStream store of NATTER_IN.", LatencyBuckets)
	m.deliver = hist("gateway", "deliver_seconds",
		"From sequencing (the message timestamp) to the gateway dispatching the message to its connections. Across hosts this includes clock skew.", LatencyBuckets)

	step := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "sequencer", Name: "step_seconds",
		Help: "Time to sequence one ingress message (state lookup, log append, fan-out, ack), by outcome; failed steps are retried.", Buckets: LatencyBuckets},
		[]string{"outcome"})
	r.MustRegister(step)
	m.stepOK, m.stepFailed = step.WithLabelValues("ok"), step.WithLabelValues("error")
	m.ingressWait = hist("sequencer", "ingress_to_log_seconds",
		"From a message stored in NATTER_IN to the sequencer done with it (appended to NATTER_LOG, fanned out, acked): queueing plus sequencing. With gateway_deliver_seconds, the server side of send-to-deliver.", LatencyBuckets)

	m.ingressBatch = hist("gateway", "ingress_batch_size",
		"Sends stored in NATTER_IN per atomic batch (the gateway's group commit); sends published alone are not counted.",
		prometheus.ExponentialBuckets(1, 2, 10))
	m.ingressBatchFailed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "gateway", Name: "ingress_batch_failures_total",
		Help: "Atomic ingress batches the server refused (a duplicate Nats-Msg-Id, or an error); their sends were then published one by one."})
	r.MustRegister(m.ingressBatchFailed)
	m.batchSize = hist("persister", "batch_size", "Messages per store write (persister batches).",
		prometheus.ExponentialBuckets(1, 2, 14))
	ops := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "store", Name: "seconds",
		Help: "Latency of history store calls, by operation.", Buckets: LatencyBuckets}, []string{"op"})
	opErrs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "store", Name: "errors_total",
		Help: "Failed history store calls, by operation."}, []string{"op"})
	r.MustRegister(ops, opErrs)
	m.storeOps, m.storeErrs = map[string]prometheus.Observer{}, map[string]prometheus.Counter{}
	for _, op := range storeOpNames {
		m.storeOps[op] = ops.WithLabelValues(op)
		m.storeErrs[op] = opErrs.WithLabelValues(op)
	}
	return m
}

// counterSet is a counter vector with one label whose values are resolved up front.
type counterSet struct {
	known map[string]prometheus.Counter
	other prometheus.Counter
}

func newCounterSet(v *prometheus.CounterVec, values []string) counterSet {
	s := counterSet{known: make(map[string]prometheus.Counter, len(values)), other: v.WithLabelValues(Other)}
	for _, x := range values {
		s.known[x] = v.WithLabelValues(x)
	}
	return s
}

func (s counterSet) inc(v string) {
	if c, ok := s.known[v]; ok {
		c.Inc()
		return
	}
	s.other.Inc()
}

// incBytes is inc for a value still in a frame's bytes: the map lookup with a
// string(b) conversion does not allocate.
func (s counterSet) incBytes(v []byte) {
	if c, ok := s.known[string(v)]; ok {
		c.Inc()
		return
	}
	s.other.Inc()
}

// GaugeFunc registers a gauge natter_<name> whose value fn returns at scrape time.
// fn must be safe for concurrent use and quick. Registering a name twice is an
// error (prometheus.AlreadyRegisteredError).
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) error {
	if m == nil {
		return nil
	}
	return m.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, fn))
}

// CounterFunc registers a counter natter_<name> whose value fn returns at scrape
// time; fn must never return less than before. Registering a name twice is an
// error.
func (m *Metrics) CounterFunc(name, help string, fn func() float64) error {
	if m == nil {
		return nil
	}
	return m.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, fn))
}

// FrameIn counts one client frame of type typ (as the client wrote it).
func (m *Metrics) FrameIn(typ string) {
	if m == nil {
		return
	}
	m.framesIn.inc(typ)
}

// FrameOut counts one frame written to a client: by type and, for an error frame,
// by code. frame is the encoded frame (the type is read from its bytes).
func (m *Metrics) FrameOut(frame []byte) {
	if m == nil {
		return
	}
	typ := stringField(frame, `"type":"`)
	m.framesOut.incBytes(typ)
	if string(typ) == protocol.FrameError {
		m.errors.incBytes(stringField(frame, `"code":"`))
	}
}

// Error counts one error sent to a client outside an error frame (an HTTP error
// body, a close reason).
func (m *Metrics) Error(code protocol.Code) {
	if m == nil {
		return
	}
	m.errors.inc(string(code))
}

// SendAcked observes the time from a send frame read to its ack.
func (m *Metrics) SendAcked(d time.Duration) {
	if m == nil {
		return
	}
	m.sendAck.Observe(d.Seconds())
}

// IngressBatch observes one atomic batch of n sends stored in NATTER_IN.
func (m *Metrics) IngressBatch(n int) {
	if m == nil {
		return
	}
	m.ingressBatch.Observe(float64(n))
}

// IngressBatchFailed counts one atomic ingress batch refused by the server.
func (m *Metrics) IngressBatchFailed() {
	if m == nil {
		return
	}
	m.ingressBatchFailed.Inc()
}

// Delivered observes, for a message frame arriving at a gateway for its
// connections, the time since the frame's timestamp (its sequencing). Other frames
// are ignored.
func (m *Metrics) Delivered(frame []byte) {
	if m == nil || string(stringField(frame, `"type":"`)) != protocol.FrameMessage {
		return
	}
	ts, ok := intField(skipContent(frame), `"timestamp":`)
	if !ok {
		return
	}
	d := time.Now().UnixMilli() - ts
	m.deliver.Observe(float64(max(d, 0)) / 1000)
}

// SequencerStep observes one sequencing attempt that started at start; *err is
// its outcome. Meant to be deferred: defer m.SequencerStep(time.Now(), &err).
func (m *Metrics) SequencerStep(start time.Time, err *error) {
	if m == nil {
		return
	}
	if *err != nil {
		m.stepFailed.Observe(time.Since(start).Seconds())
		return
	}
	m.stepOK.Observe(time.Since(start).Seconds())
}

// IngressDone observes, when *err is nil, the time since stored: when the ingress
// message the sequencer is done with was stored in NATTER_IN. Meant to be
// deferred like SequencerStep.
func (m *Metrics) IngressDone(stored time.Time, err *error) {
	if m == nil || *err != nil || stored.IsZero() {
		return
	}
	m.ingressWait.Observe(max(time.Since(stored), 0).Seconds())
}

// stringField returns the bytes of the JSON string value after key (which
// includes the opening quote of the value), or nil. Natter's encoders write the
// type first and escape quotes inside strings, so the first match is the field.
func stringField(frame []byte, key string) []byte {
	var i int
	if bytes.HasPrefix(frame, []byte(`{`+key)) {
		i = 1
	} else if i = bytes.Index(frame, []byte(key)); i < 0 {
		return nil
	}
	rest := frame[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 64 {
		return nil
	}
	return rest[:j]
}

// skipContent returns frame after its content string, or frame if it has none near
// the start (where the encoder puts it, after the IDs of at most 64 bytes each).
// Searching a 16 KiB content for a key byte by byte is what this avoids: the
// string's end is found with IndexByte, which is vectorised.
func skipContent(frame []byte) []byte {
	const key = `"content":"`
	i := bytes.Index(frame[:min(len(frame), 512)], []byte(key))
	if i < 0 {
		return frame
	}
	rest := frame[i+len(key):]
	for {
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return nil
		}
		k := j
		for k > 0 && rest[k-1] == '\\' {
			k--
		}
		rest = rest[j+1:]
		if (j-k)%2 == 0 { // an even number of backslashes: the closing quote
			return rest
		}
	}
}

// intField returns the JSON integer after key.
func intField(frame []byte, key string) (int64, bool) {
	i := bytes.Index(frame, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(key):]
	var n int64
	j := 0
	for ; j < len(rest) && j < 18 && rest[j] >= '0' && rest[j] <= '9'; j++ {
		n = n*10 + int64(rest[j]-'0')
	}
	return n, j > 0
}

package metrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/metrics"
	"github.com/natter-chat/natter/pkg/natstest"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// value returns the value of metric name with the given labels (counter, gauge or
// the sample count of a histogram); -1 when absent.
func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return mt.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return mt.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func TestFramesAndErrorsByLabel(t *testing.T) {
	msg := protocol.EncodeMessageFrame(&protocol.Message{ChatID: "c", Seq: 1, MessageID: "m", SenderID: "u",
		Content: `tricky "type":"ack" "code":"forbidden"`, MessageType: "text", Timestamp: time.Now().UnixMilli()})
	for _, tc := range []struct {
		name      string
		frame     []byte
		typ, code string
	}{
		{"message", msg, "message", ""},
		{"ack", protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameAck, ChatID: "c", MessageID: "m"}), "ack", ""},
		{"error with code", protocol.EncodeFrame(protocol.ErrorFrame(protocol.Errorf(protocol.CodeNotMember, "no"), "c", "m", "")), "error", "not_member"},
		{"error with an unknown code", []byte(`{"type":"error","code":"made_up"}`), "error", metrics.Other},
		{"unknown type", []byte(`{"type":"surprise"}`), metrics.Other, ""},
		{"not JSON", []byte(`garbage`), metrics.Other, ""},
		{"empty", nil, metrics.Other, ""},
		{"unterminated", []byte(`{"type":"mess`), metrics.Other, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			m.FrameOut(tc.frame)
			require.EqualValues(t, 1, value(t, m, "natter_gateway_frames_out_total", map[string]string{"type": tc.typ}))
			if tc.code != "" {
				require.EqualValues(t, 1, value(t, m, "natter_errors_total", map[string]string{"code": tc.code}))
			} else {
				require.EqualValues(t, 0, value(t, m, "natter_errors_total", map[string]string{"code": "forbidden"}))
			}
		})
	}
}

func TestFrameInBoundsLabels(t *testing.T) {
	m := metrics.New()
	for _, typ := range []string{"send", "send", "ping", "x\" injected", "", string(make([]byte, 10_000))} {
		m.FrameIn(typ)
	}
	require.EqualValues(t, 2, value(t, m, "natter_gateway_frames_in_total", map[string]string{"type": "send"}))
	require.EqualValues(t, 1, value(t, m, "natter_gateway_frames_in_total", map[string]string{"type": "ping"}))
	require.EqualValues(t, 3, value(t, m, "natter_gateway_frames_in_total", map[string]string{"type": metrics.Other}),
		"client-chosen types never become label values")
}

func TestDeliveredObservesMessageFramesOnly(t *testing.T) {
	m := metrics.New()
	ts := time.Now().Add(-1500 * time.Millisecond).UnixMilli()
	m.Delivered(protocol.EncodeMessageFrame(&protocol.Message{ChatID: "c", Seq: 1, MessageID: "m", SenderID: "u",
		Content: `quotes " and \" and "timestamp":1 and \\`, MessageType: "text", Timestamp: ts, Meta: []byte(`{"timestamp":1}`)}))
	m.Delivered(protocol.EncodeFrame(&protocol.Frame{Type: protocol.FrameReceipt, ChatID: "c", Timestamp: ts}))
	m.Delivered([]byte(`{"type":"message","timestamp":"nope"}`))
	fams, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == "natter_gateway_deliver_seconds" {
			h := f.GetMetric()[0].GetHistogram()
			require.EqualValues(t, 1, h.GetSampleCount())
			require.InDelta(t, 1.5, h.GetSampleSum(), 0.5, "the frame's own timestamp is used, not content's or meta's")
			return
		}
	}
	t.Fatal("no deliver histogram")
}

func TestSequencerHooks(t *testing.T) {
	m := metrics.New()
	ok, failed := error(nil), errors.New("boom")
	m.SequencerStep(time.Now().Add(-time.Millisecond), &ok)
	m.SequencerStep(time.Now(), &failed)
	m.IngressDone(time.Now().Add(-time.Second), &ok)
	m.IngressDone(time.Now(), &failed)
	m.IngressDone(time.Time{}, &ok)
	require.EqualValues(t, 1, value(t, m, "natter_sequencer_step_seconds", map[string]string{"outcome": "ok"}))
	require.EqualValues(t, 1, value(t, m, "natter_sequencer_step_seconds", map[string]string{"outcome": "error"}))
	require.EqualValues(t, 1, value(t, m, "natter_sequencer_ingress_to_log_seconds", nil))
}

func TestNilMetricsIsANoOp(t *testing.T) {
	var m *metrics.Metrics
	var err error
	m.FrameIn("send")
	m.FrameOut([]byte(`{"type":"ack"}`))
	m.Delivered([]byte(`{"type":"message","timestamp":1}`))
	m.Error(protocol.CodeInternal)
	m.SendAcked(time.Millisecond)
	m.SequencerStep(time.Now(), &err)
	m.IngressDone(time.Now(), &err)
	require.NoError(t, m.GaugeFunc("x", "x", func() float64 { return 1 }))
	m.WatchConsumers(nil, nil, nil)
}

func TestFuncMetricsRefuseDuplicates(t *testing.T) {
	m := metrics.New()
	require.NoError(t, m.GaugeFunc("test_gauge", "help", func() float64 { return 7 }))
	require.Error(t, m.GaugeFunc("test_gauge", "help", func() float64 { return 7 }))
	require.NoError(t, m.CounterFunc("test_total", "help", func() float64 { return 3 }))
	require.EqualValues(t, 7, value(t, m, "natter_test_gauge", nil))
	require.EqualValues(t, 3, value(t, m, "natter_test_total", nil))
}

// The hooks run for every frame: they must not allocate.
func TestHotPathHooksDoNotAllocate(t *testing.T) {
	m := metrics.New()
	msg := protocol.EncodeMessageFrame(&protocol.Message{ChatID: "chat", Seq: 9, MessageID: "m1", SenderID: "u",
		Content: "hello", MessageType: "text", Timestamp: time.Now().UnixMilli()})
	errFrame := protocol.EncodeFrame(protocol.ErrorFrame(protocol.Errorf(protocol.CodeRateLimited, "slow"), "c", "m", ""))
	var err error
	for name, fn := range map[string]func(){
		"FrameIn":       func() { m.FrameIn("send") },
		"FrameIn other": func() { m.FrameIn("bogus") },
		"FrameOut":      func() { m.FrameOut(msg) },
		"FrameOut err":  func() { m.FrameOut(errFrame) },
		"Delivered":     func() { m.Delivered(msg) },
		"SendAcked":     func() { m.SendAcked(time.Millisecond) },
		"SequencerStep": func() { m.SequencerStep(time.Now(), &err) },
		"IngressDone":   func() { m.IngressDone(time.Now(), &err) },
	} {
		require.Zero(t, testing.AllocsPerRun(200, fn), name)
	}
}

func BenchmarkFrameOut(b *testing.B) {
	m := metrics.New()
	msg := protocol.EncodeMessageFrame(&protocol.Message{ChatID: "chat", Seq: 9, MessageID: "m1", SenderID: "u",
		Content: string(make([]byte, 1024)), MessageType: "text", Timestamp: time.Now().UnixMilli()})
	b.ReportAllocs()
	for b.Loop() {
		m.FrameOut(msg)
		m.Delivered(msg)
	}
}

func TestInstrumentedStore(t *testing.T) {
	ctx := context.Background()
	raw, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	m := metrics.New()
	s := metrics.InstrumentStore(raw, m)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.Same(t, raw, metrics.Unwrap(s))
	require.Equal(t, raw, metrics.InstrumentStore(raw, nil), "no metrics: the store itself")

	msgs := make([]protocol.Message, 3)
	for i := range msgs {
		msgs[i] = protocol.Message{ChatID: "c1", Seq: uint64(i + 1), MessageID: "m" + strconv.Itoa(i), SenderID: "u", Content: "x", MessageType: "text", Timestamp: 1}
	}
	require.NoError(t, s.AppendMessages(ctx, msgs))
	last, err := s.LastSeq(ctx, "c1")
	require.NoError(t, err)
	require.EqualValues(t, 3, last, "calls pass through")
	_, err = s.GetChat(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound, "errors pass through unchanged")
	require.NoError(t, s.Ping(ctx))
	sr, ok := s.(store.Searcher)
	require.True(t, ok, "the wrapper keeps the side interface of a store that searches")
	found, err := sr.Search(ctx, "u", store.SearchQuery{Text: "x"})
	require.NoError(t, err)
	require.Empty(t, found, "u is in no chat")
	_, ok = metrics.InstrumentStore(struct{ store.Store }{raw}, m).(store.Searcher)
	require.False(t, ok, "nor adds it to one that does not")

	require.EqualValues(t, 1, value(t, m, "natter_store_seconds", map[string]string{"op": "append_messages"}))
	require.EqualValues(t, 1, value(t, m, "natter_store_seconds", map[string]string{"op": "last_seq"}))
	require.EqualValues(t, 1, value(t, m, "natter_store_seconds", map[string]string{"op": "get_chat"}))
	require.EqualValues(t, 0, value(t, m, "natter_store_errors_total", map[string]string{"op": "get_chat"}), "not found is an answer, not an error")
	require.EqualValues(t, 1, value(t, m, "natter_persister_batch_size", nil))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.History(cctx, "c1", store.HistoryQuery{})
	require.Error(t, err)
	require.EqualValues(t, 1, value(t, m, "natter_store_errors_total", map[string]string{"op": "history"}))
}

func TestConsumerLagFromConsumerInfo(t *testing.T) {
	ns := natstest.Server(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "LAGTEST", Subjects: []string{"lag.>"}})
	require.NoError(t, err)
	_, err = js.CreateOrUpdateConsumer(ctx, "LAGTEST", jetstream.ConsumerConfig{Durable: "SLOW", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		_, err := js.Publish(ctx, "lag.x", []byte("x"))
		require.NoError(t, err)
	}
	m := metrics.New()
	m.WatchConsumers(js, []string{"LAGTEST"}, []string{"LATER"})
	require.EqualValues(t, 5, value(t, m, "natter_consumer_pending", map[string]string{"stream": "LAGTEST", "consumer": "SLOW"}))

	cons, err := js.Consumer(ctx, "LAGTEST", "SLOW")
	require.NoError(t, err)
	batch, err := cons.Fetch(2)
	require.NoError(t, err)
	n := 0
	for msg := range batch.Messages() {
		n++
		if n == 1 {
			require.NoError(t, msg.Ack())
		}
	}
	require.Equal(t, 2, n)
	require.Eventually(t, func() bool {
		return value(t, m, "natter_consumer_pending", map[string]string{"consumer": "SLOW"}) == 3 &&
			value(t, m, "natter_consumer_ack_pending", map[string]string{"consumer": "SLOW"}) == 1
	}, 5*time.Second, 20*time.Millisecond)

	// An optional stream is skipped until it exists, then reported like the others.
	_, err = m.Registry.Gather()
	require.NoError(t, err, "LATER does not exist yet: not an error")
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "LATER", Subjects: []string{"later.>"}})
	require.NoError(t, err)
	_, err = js.CreateOrUpdateConsumer(ctx, "LATER", jetstream.ConsumerConfig{Durable: "WINDOWS", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "later.x", []byte("x"))
	require.NoError(t, err)
	require.EqualValues(t, 1, value(t, m, "natter_consumer_pending", map[string]string{"stream": "LATER", "consumer": "WINDOWS"}))

	// A stream that does not exist makes the scrape fail for it, loudly.
	m2 := metrics.New()
	m2.WatchConsumers(js, []string{"NO_SUCH_STREAM"}, nil)
	_, err = m2.Registry.Gather()
	require.ErrorContains(t, err, "NO_SUCH_STREAM")
}

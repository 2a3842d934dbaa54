package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// StreamGetter is the part of jetstream.JetStream the lag collector needs.
type StreamGetter interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// LagTimeout bounds the consumer-info calls of one scrape.
var LagTimeout = 2 * time.Second

// WatchConsumers registers a collector that polls, on every scrape, the consumer
// info of each consumer of streams and reports:
//
//	natter_consumer_pending{stream,consumer}      messages not yet delivered (num_pending): the lag
//	natter_consumer_ack_pending{stream,consumer}  delivered, not yet acknowledged
//	natter_consumer_redelivered{stream,consumer}  being redelivered
//
// A stream of streams that cannot be read makes the scrape report an error for it
// (the other metrics are still served). The optional streams are those a role
// creates when it first runs, maybe in another process (the notifier's window
// bucket): until they exist they are skipped, not reported as errors.
func (m *Metrics) WatchConsumers(js StreamGetter, streams, optional []string) {
	if m == nil {
		return
	}
	labels := []string{"stream", "consumer"}
	m.Registry.MustRegister(&lagCollector{
		js: js, streams: streams, optional: optional,
		pending: prometheus.NewDesc(Namespace+"_consumer_pending",
			"Messages in the stream not yet delivered to the consumer (num_pending): the consumer's lag.", labels, nil),
		ackPending: prometheus.NewDesc(Namespace+"_consumer_ack_pending",
			"Messages delivered to the consumer and not yet acknowledged (num_ack_pending).", labels, nil),
		redelivered: prometheus.NewDesc(Namespace+"_consumer_redelivered",
			"Messages the consumer is redelivering (num_redelivered).", labels, nil),
	})
}

type lagCollector struct {
	js                               StreamGetter
	streams, optional                []string
	pending, ackPending, redelivered *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), LagTimeout)
	defer cancel()
	for i, name := range slices.Concat(c.streams, c.optional) {
		s, err := c.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) && i >= len(c.streams) {
			continue // an optional stream not created yet
		}
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.pending, fmt.Errorf("stream %s: %w", name, err))
			continue
		}
		l := s.ListConsumers(ctx)
		for ci := range l.Info() {
			ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(ci.NumPending), name, ci.Name)
			ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(ci.NumAckPending), name, ci.Name)
			ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(ci.NumRedelivered), name, ci.Name)
		}
		if err := l.Err(); err != nil {
			ch <- prometheus.NewInvalidMetric(c.pending, fmt.Errorf("consumers of %s: %w", name, err))
		}
	}
}

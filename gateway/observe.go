package gateway

import "fmt"

// observe registers the gateway's scrape-time gauges and hands the metrics to the
// hub. The per-frame hooks (frames in and out, errors by code, send-to-ack and
// deliver latency) call g.deps.Metrics directly; they are no-ops without metrics.
func (g *Gateway) observe() error {
	m := g.deps.Metrics
	g.hub.Metrics = m
	if m == nil {
		return nil
	}
	if err := m.GaugeFunc("gateway_connections", "Connected devices (WebSocket and event-stream connections).", func() float64 {
		conns, _ := g.hub.Count()
		return float64(conns)
	}); err != nil {
		return fmt.Errorf("gateway: metrics: %w", err)
	}
	if err := m.GaugeFunc("gateway_users", "Distinct users with at least one connection.", func() float64 {
		_, users := g.hub.Count()
		return float64(users)
	}); err != nil {
		return fmt.Errorf("gateway: metrics: %w", err)
	}
	if err := m.GaugeFunc("gateway_draining", "1 while the gateway drains its connections before stopping.", func() float64 {
		if g.Draining() {
			return 1
		}
		return 0
	}); err != nil {
		return fmt.Errorf("gateway: metrics: %w", err)
	}
	if err := m.CounterFunc("gateway_conns_per_ip_refused_total", "TCP connections closed on accept: their IP was at gateway.limits.conns-per-ip.", func() float64 {
		return float64(g.metrics.ipRefused.Load())
	}); err != nil {
		return fmt.Errorf("gateway: metrics: %w", err)
	}
	if err := m.CounterFunc("gateway_rest_rate_limited_total", "REST requests refused with rate_limited (chat creation, member adds, message posts).", func() float64 {
		return float64(g.metrics.restLimited.Load())
	}); err != nil {
		return fmt.Errorf("gateway: metrics: %w", err)
	}
	return m.CounterFunc("gateway_slow_consumers_total", "Connections closed because their send queue overflowed.", func() float64 {
		return float64(g.metrics.slowConsumers.Load())
	})
}

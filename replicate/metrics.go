package replicate

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector exports a [Metrics] as Prometheus series labelled with the
// source name, read when scraped (the source is known only once Run has
// resolved its default).
type collector struct {
	m     *Metrics
	descs []metricDesc
}

type metricDesc struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(m *Metrics, now time.Time) float64
}

// NewCollector returns a Prometheus collector for m, one series per field,
// labelled with the source name:
//
//	evstore_replicate_head_position, _replicated_position, _lag_events,
//	_lag_seconds, _last_success_timestamp_seconds (gauges),
//	_batches_total, _events_total, _bytes_sent_total, _errors_total.
//
// Register it with the application's registry; [MetricsHandler] serves one
// on its own.
func NewCollector(m *Metrics) prometheus.Collector {
	d := func(name, help string, kind prometheus.ValueType, f func(*Metrics, time.Time) float64) metricDesc {
		return metricDesc{prometheus.NewDesc("evstore_replicate_"+name, help, []string{"source"}, nil), kind, f}
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	return &collector{m: m, descs: []metricDesc{
		d("head_position", "Last position in the local log.", g,
			func(m *Metrics, _ time.Time) float64 { return float64(m.HeadPosition.Load()) }),
		d("replicated_position", "Last position committed to PostgreSQL.", g,
			func(m *Metrics, _ time.Time) float64 { return float64(m.ReplicatedPosition.Load()) }),
		d("lag_events", "Committed events PostgreSQL does not have yet.", g,
			func(m *Metrics, _ time.Time) float64 { return float64(m.LagEvents()) }),
		d("lag_seconds", "Age of the oldest event PostgreSQL does not have yet.", g,
			func(m *Metrics, now time.Time) float64 { return m.LagSeconds(now) }),
		d("last_success_timestamp_seconds", "When a batch last committed (Unix time), 0 before the first.", g,
			func(m *Metrics, _ time.Time) float64 { return float64(m.LastSuccess.Load()) / 1e9 }),
		d("batches_total", "Batches committed to PostgreSQL.", c,
			func(m *Metrics, _ time.Time) float64 { return float64(m.Batches.Load()) }),
		d("events_total", "Events committed to PostgreSQL.", c,
			func(m *Metrics, _ time.Time) float64 { return float64(m.Events.Load()) }),
		d("bytes_sent_total", "Bytes written to PostgreSQL connections, protocol included.", c,
			func(m *Metrics, _ time.Time) float64 { return float64(m.BytesSent.Load()) }),
		d("errors_total", "Failed replication attempts.", c,
			func(m *Metrics, _ time.Time) float64 { return float64(m.Errors.Load()) }),
	}}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now, source := time.Now(), c.m.Source()
	for _, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(c.m, now), source)
	}
}

// MetricsHandler serves m for Prometheus at /metrics (text exposition
// format), for a replicator that has no HTTP server of its own. It only
// reads m; serve it with size and time limits like any listener
// (http.Server's ReadHeaderTimeout).
func MetricsHandler(m *Metrics) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(m))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

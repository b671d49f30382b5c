package cli

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/server"
)

// metricsFlags are --metrics-addr and --metrics-token-file, shared by the
// commands that run for long (replicate, serve).
func metricsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics on `ADDR` at /metrics (a port alone, :9464, binds 127.0.0.1)"},
		&cli.StringFlag{Name: "metrics-token-file", Usage: "require the bearer token in `FILE` (mode 0600) from scrapers; needed for a non-loopback --metrics-addr"},
	}
}

// startMetrics serves the store's head and, when m is not nil, the
// replicator's metrics, if --metrics-addr asks for it. Like the API on TCP,
// it binds the loopback interface unless told otherwise, and refuses
// anything else without a token.
func startMetrics(c *cli.Context, cmd string, store *local.Store, m *replicate.Metrics) (stop func(), err error) {
	addr := c.String("metrics-addr")
	if addr == "" {
		return func() {}, nil
	}
	addr = server.LoopbackDefault(addr)
	token := ""
	if f := c.String("metrics-token-file"); f != "" {
		if token, err = readToken(cmd, "metrics-token-file", f); err != nil {
			return nil, err
		}
	} else if !isLoopback(addr) {
		return nil, usageErrorf("%s: --metrics-addr %s is not a loopback address: pass --metrics-token-file so that only your scraper can read it", cmd, addr)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "evstore_head_position", Help: "Last position in the local log."},
		func() float64 { return float64(store.Head()) }))
	if m != nil {
		reg.MustRegister(replicate.NewCollector(m))
	}
	var h http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if token != "" {
		h = server.RequireToken(h, token)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, failuref(err, "%s: metrics on %s: %v", cmd, addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// isLoopback reports whether addr's host is a loopback address or
// "localhost".
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

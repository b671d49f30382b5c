package replicate

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMetricsHandler(t *testing.T) {
	var m Metrics
	m.setSource(`till-"1"`)
	m.HeadPosition.Store(10)
	m.ReplicatedPosition.Store(7)
	m.Batches.Store(2)
	m.Errors.Store(4)
	m.OldestPending.Store(time.Now().Add(-3 * time.Second).UnixNano())
	srv := httptest.NewServer(MetricsHandler(&m))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`evstore_replicate_head_position{source="till-\"1\""} 10`,
		`evstore_replicate_replicated_position{source="till-\"1\""} 7`,
		`evstore_replicate_lag_events{source="till-\"1\""} 3`,
		`evstore_replicate_batches_total{source="till-\"1\""} 2`,
		`evstore_replicate_errors_total{source="till-\"1\""} 4`,
		`evstore_replicate_lag_seconds{source="till-\"1\""} 3`,
		"# TYPE evstore_replicate_events_total counter",
		"# TYPE evstore_replicate_lag_events gauge",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

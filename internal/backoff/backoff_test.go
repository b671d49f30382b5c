package backoff

import (
	"context"
	"testing"
	"time"
)

func TestWaitBounds(t *testing.T) {
	tests := []struct {
		name   string
		p      Policy
		n      int
		lo, hi time.Duration
	}{
		{"first, no jitter", Policy{Min: time.Second, Max: time.Minute}, 1, time.Second, time.Second},
		{"doubles", Policy{Min: time.Second, Max: time.Minute}, 3, 4 * time.Second, 4 * time.Second},
		{"capped", Policy{Min: time.Second, Max: 5 * time.Second}, 10, 5 * time.Second, 5 * time.Second},
		{"huge n does not overflow", Policy{Min: time.Second, Max: 5 * time.Minute}, 1 << 30, 5 * time.Minute, 5 * time.Minute},
		{"half jitter", Policy{Min: 8 * time.Second, Max: time.Minute, Jitter: 0.5}, 1, 4 * time.Second, 8 * time.Second},
		{"full jitter", Policy{Min: time.Millisecond, Max: time.Second, Jitter: 1}, 2, 0, 2 * time.Millisecond},
		{"floor", Policy{Min: time.Second, Max: time.Minute, Jitter: 1, Floor: time.Second}, 1, time.Second, time.Second},
		{"n below 1", Policy{Min: time.Second, Max: time.Minute}, 0, time.Second, time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if got := tt.p.Wait(tt.n); got < tt.lo || got > tt.hi {
				t.Fatalf("%s: Wait(%d) = %v, want in [%v, %v]", tt.name, tt.n, got, tt.lo, tt.hi)
			}
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}

package graph

import (
	"strings"
	"testing"
	"time"
)

func TestRetryDelayBackoff(t *testing.T) {
	t.Parallel()
	c := &Client{backoffBase: time.Second, backoffMax: 8 * time.Second}
	tests := []struct {
		try      int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{5, 4 * time.Second, 8 * time.Second},
		{64, 4 * time.Second, 8 * time.Second},
	}
	for _, tt := range tests {
		for range 20 {
			if got := c.retryDelay("", tt.try); got < tt.min || got > tt.max {
				t.Errorf("retryDelay(\"\", %d) = %v; want within [%v, %v]", tt.try, got, tt.min, tt.max)
			}
		}
	}
	if got := c.retryDelay("3", 1); got != 3*time.Second {
		t.Errorf("retryDelay(%q, 1) = %v; want 3s (Retry-After wins)", "3", got)
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"Insufficient privileges.", 100, "Insufficient privileges."},
		{"line1\nline2\x1b[31m", 100, "line1line2[31m"},
		{"abcdef", 3, "abc"},
		{"ab\u00e9cd", 3, "ab"}, // é is two bytes: never cut inside it
		{strings.Repeat("x", 2000), maxMessage, strings.Repeat("x", maxMessage)},
	}
	for _, tt := range tests {
		if got := clean(tt.in, tt.n); got != tt.want {
			t.Errorf("clean(%q, %d) = %q; want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

package retryafter

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		v      string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"99999999999", time.Hour, true},
		{"Sun, 22 Nov 2026 00:00:30 GMT", 30 * time.Second, true},
		{"Sat, 21 Nov 2026 23:00:00 GMT", 0, true},
		{"Mon, 23 Nov 2026 00:00:00 GMT", time.Hour, true},
		{"soon", 0, false},
		{"1.5", 0, false},
	}
	for _, tt := range tests {
		got, ok := Parse(tt.v, now, time.Hour)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Parse(%q) = %s, %v; want %s, %v", tt.v, got, ok, tt.want, tt.wantOK)
		}
	}
}

package settings

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadWatchAfter(t *testing.T) {
	t.Parallel()
	withStorage := webhookOnly.with("AzureWebJobsStorage", "UseDevelopmentStorage=true")
	t.Run("off by default", func(t *testing.T) {
		s := mustLoad(t, withStorage)
		if s.WatchEnabled() || s.WatchQueue != "revoke-watch" {
			t.Errorf("WatchAfter %v WatchQueue %q; want off and revoke-watch", s.WatchAfter, s.WatchQueue)
		}
	})
	t.Run("durations as written, ascending", func(t *testing.T) {
		s := mustLoad(t, withStorage.with("WATCH_AFTER", " 15m, 2h ,168h", "WATCH_QUEUE", "checks"))
		if want := []time.Duration{15 * time.Minute, 2 * time.Hour, 168 * time.Hour}; !slices.Equal(s.WatchAfter, want) {
			t.Errorf("WatchAfter = %v; want %v", s.WatchAfter, want)
		}
		if want := []string{"15m", "2h", "168h"}; !slices.Equal(s.WatchAfterText, want) {
			t.Errorf("WatchAfterText = %q; want %q", s.WatchAfterText, want)
		}
		if !s.NeedsUserLookups() || s.WatchQueue != "checks" {
			t.Errorf("NeedsUserLookups %v WatchQueue %q; want true (the check needs the object ID), checks", s.NeedsUserLookups(), s.WatchQueue)
		}
	})
	bad := []struct {
		name string
		e    env
	}{
		{"not a duration", withStorage.with("WATCH_AFTER", "15")},
		{"below 5m", withStorage.with("WATCH_AFTER", "4m59s")},
		{"above 168h", withStorage.with("WATCH_AFTER", "169h")},
		{"descending", withStorage.with("WATCH_AFTER", "2h,15m")},
		{"repeated", withStorage.with("WATCH_AFTER", "15m,15m")},
		{"empty entry", withStorage.with("WATCH_AFTER", "15m,,2h")},
		{"no storage", webhookOnly.with("WATCH_AFTER", "15m")},
		{"no queue secret", env{"AzureWebJobsStorage": "UseDevelopmentStorage=true", "ENTRA_TENANT_ID": tenantID, "ENTRA_AUDIENCE": clientID, "WATCH_AFTER": "15m"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.e.get)
			if err == nil || !strings.Contains(err.Error(), "WATCH_AFTER: ") {
				t.Errorf("Load(WATCH_AFTER=%q) error = %v; want one naming WATCH_AFTER", tt.e["WATCH_AFTER"], err)
			}
		})
	}
	for _, q := range []string{"Revoke-Watch", "revoke-requests", "ab"} {
		if _, err := Load(withStorage.with("WATCH_QUEUE", q).get); err == nil || !strings.Contains(err.Error(), "WATCH_QUEUE: ") {
			t.Errorf("Load(WATCH_QUEUE=%q) error = %v; want one naming WATCH_QUEUE", q, err)
		}
	}
}

package revoke_test

import (
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

func TestOverall(t *testing.T) {
	t.Parallel()
	r := func(ss ...revoke.Status) []revoke.UserResult {
		var out []revoke.UserResult
		for _, s := range ss {
			out = append(out, revoke.UserResult{Status: s})
		}
		return out
	}
	tests := []struct {
		in   []revoke.UserResult
		want revoke.Status
	}{
		{r(revoke.StatusRevoked), revoke.StatusRevoked},
		{r(revoke.StatusDryRun, revoke.StatusDryRun), revoke.StatusDryRun},
		{r(revoke.StatusRevoked, revoke.StatusNotFound), revoke.StatusPartial},
		{nil, revoke.StatusPartial},
	}
	for _, tt := range tests {
		if got := revoke.Overall(tt.in); got != tt.want {
			t.Errorf("revoke.Overall(%v) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

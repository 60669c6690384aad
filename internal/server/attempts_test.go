package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

func TestAttemptsExpireAndAreBounded(t *testing.T) {
	t.Parallel()
	p := newAttempts()
	now := time.Unix(1_700_000_000, 0)
	done := []revoke.UserResult{{UPN: "a@contoso.com", Status: revoke.StatusRevoked}}
	for i := range 1000 {
		p.put(fmt.Sprintf("m%d", i), done, true, now)
	}
	if _, ok := p.get("m999", now); !ok {
		t.Fatalf("get(m999) not done; want the remembered completion")
	}
	later := now.Add(attemptTTL + time.Second)
	p.put("fresh", done, true, later)
	if len(p.m) != 1 || len(p.order) != 1 {
		t.Errorf("after the TTL: %d entries, %d in order; want only the fresh one", len(p.m), len(p.order))
	}
	if prior, ok := p.get("m1", later); ok || prior != nil {
		t.Errorf("get(m1) after the TTL = %v, %v; want forgotten", prior, ok)
	}
	for i := range maxAttempts + 10 {
		p.put(fmt.Sprintf("b%d", i), done, true, later)
	}
	if len(p.m) > maxAttempts {
		t.Errorf("%d entries; want at most %d", len(p.m), maxAttempts)
	}
}

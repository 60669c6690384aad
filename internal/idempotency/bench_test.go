package idempotency_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/idempotency"
)

// Benchmarks of the idempotency store, claimed once per request that carries a request id. The
// store is bounded at 50,000 ids, so its cost is measured both while it fills and once it is full
// (every new id then evicts one): a steady 100 requests/s with the default 10 min TTL keeps it
// full.

const benchStoreCap = 50_000

func BenchmarkClaim(b *testing.B) {
	ctx := context.Background()
	body := []byte(`{"upn":"alice@contoso.com","ticket":"INC0012345"}`)
	resp := &idempotency.Response{Status: 200, ContentType: "application/json", Body: []byte(`{"status":"revoked"}`)}

	b.Run("new_id", func(b *testing.B) {
		var s *idempotency.Store
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// A fresh store before it fills up: this case measures the store below its bound (the
			// next one measures it full), and b.Loop's calibration on cheap early iterations must
			// not carry the run past the bound.
			if i%(benchStoreCap*4/5) == 0 {
				s = idempotency.New(10*time.Minute, nil)
			}
			replay, commit, err := s.Claim(ctx, "webhook:0\x00msg_"+strconv.Itoa(i), body)
			if err != nil || replay != nil || commit == nil {
				b.Fatalf("Claim(new id %d) = %v, %v", i, replay, err)
			}
			commit(resp)
			i++
		}
	})

	b.Run("new_id_store_full", func(b *testing.B) {
		s := idempotency.New(10*time.Minute, nil)
		for i := range benchStoreCap {
			_, commit, err := s.Claim(ctx, "fill_"+strconv.Itoa(i), body)
			if err != nil {
				b.Fatal(err)
			}
			commit(resp)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			replay, commit, err := s.Claim(ctx, "webhook:0\x00msg_"+strconv.Itoa(i), body)
			if err != nil || replay != nil || commit == nil {
				b.Fatalf("Claim(new id %d) = %v, %v", i, replay, err)
			}
			commit(resp)
			i++
		}
		if n := s.Len(); n > benchStoreCap+1 {
			b.Fatalf("store holds %d ids; want at most %d", n, benchStoreCap)
		}
	})

	b.Run("replay", func(b *testing.B) {
		s := idempotency.New(10*time.Minute, nil)
		_, commit, err := s.Claim(ctx, "webhook:0\x00msg_1", body)
		if err != nil {
			b.Fatal(err)
		}
		commit(resp)
		b.ReportAllocs()
		for b.Loop() {
			replay, _, err := s.Claim(ctx, "webhook:0\x00msg_1", body)
			if err != nil || replay == nil || replay.Status != 200 {
				b.Fatalf("Claim(known id) = %v, %v; want the first response", replay, err)
			}
		}
	})
}

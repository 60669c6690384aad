package state

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// TestOnAzurite runs everything that needs the table service on one Azurite: the conformance
// suite for *Table (two Tables on one table stand for two instances) and for *Shared, and what
// only a table can show.
func TestOnAzurite(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)

	t.Run("table conformance", func(t *testing.T) {
		t.Parallel()
		testConformance(t, func(t *testing.T, clock *fakeClock, rate int) (Store, Store) {
			name := tableName()
			return mustTable(t, az.ConnectionString, name, clock, rate), mustTable(t, az.ConnectionString, name, clock, rate)
		})
	})
	t.Run("shared conformance", func(t *testing.T) {
		t.Parallel()
		testConformance(t, func(t *testing.T, clock *fakeClock, rate int) (Store, Store) {
			name := tableName()
			return mustShared(t, az.ConnectionString, name, clock, rate, nil), mustShared(t, az.ConnectionString, name, clock, rate, nil)
		})
	})
	t.Run("shared outage and recovery", func(t *testing.T) {
		t.Parallel()
		testSharedOutage(t, az)
	})
	t.Run("shared with its table killed", func(t *testing.T) {
		t.Parallel()
		testSharedTableKilled(t)
	})
	t.Run("blips, slow tables, skewed clocks", func(t *testing.T) {
		t.Parallel()
		testBlips(t, az)
	})
	t.Run("rate guard with busy instances", func(t *testing.T) {
		t.Parallel()
		testRateGuardInstances(t, az.ConnectionString)
	})
	t.Run("table limits", func(t *testing.T) {
		t.Parallel()
		testTableLimits(t, az.ConnectionString)
	})
	t.Run("table cleanup in pages", func(t *testing.T) {
		t.Parallel()
		testTableCleanupPages(t, az.ConnectionString)
	})
	t.Run("table deleted under an instance", func(t *testing.T) {
		t.Parallel()
		testTableRecreated(t, az.ConnectionString)
	})
	t.Run("table operations per request", func(t *testing.T) {
		t.Parallel()
		testOpsPerRequest(t, az.ConnectionString)
	})
}

// tableName returns a table name of its own for each test, so tests sharing one Azurite never
// meet.
func tableName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// tableConfig is the TableConfig of a storage connection string as settings parses it for the
// handler.
func tableConfig(t *testing.T, conn, name string, clock *fakeClock, rate int) TableConfig {
	t.Helper()
	st, err := settings.ParseStorageConnectionString(conn)
	if err != nil {
		t.Fatalf("ParseStorageConnectionString: %v", err)
	}
	return TableConfig{
		ServiceURL: st.TableServiceURL, AccountName: st.AccountName, AccountKey: st.AccountKey, SAS: st.SharedAccessSignature,
		Table: name, RatePerMinute: rate, Now: clock.Now,
	}
}

func mustTable(t *testing.T, conn, name string, clock *fakeClock, rate int) *Table {
	t.Helper()
	tb, err := NewTable(context.Background(), tableConfig(t, conn, name, clock, rate))
	if err != nil {
		t.Fatalf("NewTable(%s) = %v", name, err)
	}
	return tb
}

// countingPolicy counts the requests that reach the table, by method.
type countingPolicy struct {
	mu    sync.Mutex
	total int
}

func (c *countingPolicy) Do(req *policy.Request) (*http.Response, error) {
	c.mu.Lock()
	c.total++
	c.mu.Unlock()
	return req.Next()
}

func (c *countingPolicy) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// testOpsPerRequest measures the table operations of single-user requests on the happy path
// (claim, rate guard, finish) at one instance and at two, both busy.
func testOpsPerRequest(t *testing.T, conn string) {
	ctx := context.Background()
	tests := []struct {
		name      string
		instances int
		perSecond int // requests per second, all instances together
		most      float64
	}{
		{"one instance, one request every 10s", 1, 0, 3},
		{"one instance, 10 a second", 1, 10, 2.5},
		{"two instances, 10 a second", 2, 10, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			name := tableName()
			counter := &countingPolicy{}
			var stores []*Table
			for range tt.instances {
				cfg := tableConfig(t, conn, name, clock, 600)
				cfg.perTry = []policy.Policy{counter}
				tb, err := NewTable(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				stores = append(stores, tb)
			}
			step := 10 * time.Second
			if tt.perSecond > 0 {
				step = time.Second / time.Duration(tt.perSecond)
			}
			// Warm up (table creation, first read of the bucket), then measure.
			run := func(from, n int) {
				for i := from; i < from+n; i++ {
					s := stores[i%len(stores)]
					key := RequestKey{Scope: "webhook", ID: fmt.Sprintf("msg_%d", i)}
					c := mustLease(t, s, key, "h", 30*time.Second)
					if _, ok := s.Take(ctx, 1); !ok {
						t.Fatalf("request %d: rate guard refused at %s", i, tt.name)
					}
					mustFinish(t, s, key, c.Lease, Response{Status: 200, Body: []byte(`{"status":"revoked"}`)}, 24*time.Hour)
					clock.Advance(step)
				}
			}
			run(0, 10)
			before := counter.count()
			const n = 200
			run(10, n)
			perRequest := float64(counter.count()-before) / n
			t.Logf("%s: %.2f table operations per single-user request", tt.name, perRequest)
			if perRequest > tt.most {
				t.Errorf("%s: %.2f table operations per single-user request; want at most %.1f", tt.name, perRequest, tt.most)
			}
		})
	}
}

// testRateGuardInstances: several instances, all busy at once, stay within the limit (+10 %)
// and use most of it.
func testRateGuardInstances(t *testing.T, conn string) {
	for _, instances := range []int{1, 4, 10} {
		t.Run(fmt.Sprintf("%d instances", instances), func(t *testing.T) {
			t.Parallel()
			const limit, seconds = 300, 120
			clock := newFakeClock()
			name := tableName()
			var stores []*Table
			for range instances {
				stores = append(stores, mustTable(t, conn, name, clock, limit))
			}
			granted := 0
			for range seconds {
				var wg sync.WaitGroup
				var mu sync.Mutex
				for _, s := range stores {
					wg.Go(func() {
						n := 0
						for {
							if _, ok := s.Take(context.Background(), 1); !ok {
								break
							}
							n++
						}
						mu.Lock()
						granted += n
						mu.Unlock()
					})
				}
				wg.Wait()
				clock.Advance(time.Second)
			}
			// The bucket starts full, then refills at the limit.
			most := limit + limit*seconds/60*11/10
			least := limit * seconds / 60 * 9 / 10
			t.Logf("%d instances, %d s at %d a minute: %d granted (at most %d)", instances, seconds, limit, granted, most)
			if granted > most || granted < least {
				t.Errorf("%d instances over %d s at %d a minute: granted %d; want between %d and %d", instances, seconds, limit, granted, least, most)
			}
		})
	}
}

// testTableLimits: a body beyond what an entity holds is refused with ErrTooLarge (and a Shared
// does not take that for an outage); one just within fits.
func testTableLimits(t *testing.T, conn string) {
	ctx := context.Background()
	clock := newFakeClock()
	s := mustShared(t, conn, tableName(), clock, 0, nil)
	fits := make([]byte, MaxValueSize)
	for i := range fits {
		fits[i] = byte(i)
	}
	if err := s.PutStatus(ctx, "fits", fits, time.Hour); err != nil {
		t.Fatalf("PutStatus(%d bytes) = %v; want it stored", len(fits), err)
	}
	if got, err := s.table.GetStatus(ctx, "fits"); err != nil || !bytes.Equal(got, fits) {
		t.Errorf("GetStatus from the table = %d bytes, %v; want the %d stored", len(got), err, len(fits))
	}
	tooLarge := append(fits, 0)
	if err := s.PutStatus(ctx, "too-large", tooLarge, time.Hour); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PutStatus(%d bytes) = %v; want ErrTooLarge", len(tooLarge), err)
	}
	key := RequestKey{Scope: "webhook", ID: "too-large"}
	c := mustLease(t, s, key, "h", time.Minute)
	if err := s.Finish(ctx, key, c.Lease, Response{Status: 200, Body: tooLarge}, time.Hour); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Finish(%d bytes) = %v; want ErrTooLarge", len(tooLarge), err)
	}
	if got := s.Mode(); got != ModeTable {
		t.Errorf("Mode() after ErrTooLarge = %q; want %q (not an outage)", got, ModeTable)
	}
}

// testTableCleanupPages: Cleanup goes through several pages, and stops when its context ends.
func testTableCleanupPages(t *testing.T, conn string) {
	ctx := context.Background()
	clock := newFakeClock()
	tb := mustTable(t, conn, tableName(), clock, 0)
	const n = 2*cleanupPageSize + 30
	for i := range n {
		if err := tb.PutStatus(ctx, fmt.Sprintf("s-%d", i), []byte(`{}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.PutStatus(ctx, "kept", []byte(`{}`), 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)

	ended, cancel := context.WithCancel(ctx)
	cancel()
	if deleted, err := tb.Cleanup(ended); !errors.Is(err, context.Canceled) || deleted != 0 {
		t.Errorf("Cleanup with an ended context = %d, %v; want 0, context.Canceled", deleted, err)
	}
	deleted, err := tb.Cleanup(ctx)
	if err != nil || deleted != n {
		t.Errorf("Cleanup of %d expired entities = %d, %v; want %d, nil", n, deleted, err, n)
	}
	if _, err := tb.GetStatus(ctx, "kept"); err != nil {
		t.Errorf("after Cleanup, the unexpired status = %v; want it kept", err)
	}
}

// testTableRecreated: a table deleted under a running instance is created again by the next write.
func testTableRecreated(t *testing.T, conn string) {
	ctx := context.Background()
	clock := newFakeClock()
	tb := mustTable(t, conn, tableName(), clock, 60)
	if _, err := tb.client.Delete(ctx, nil); err != nil {
		t.Fatalf("delete table: %v", err)
	}
	key := RequestKey{Scope: "webhook", ID: "x"}
	c := mustLease(t, tb, key, "h", time.Minute)
	mustFinish(t, tb, key, c.Lease, Response{Status: 200, Body: []byte(`{}`)}, time.Hour)
	if _, ok := tb.Take(ctx, 1); !ok {
		t.Errorf("Take on a recreated table refused")
	}
}

package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

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

func mustTable(t *testing.T, conn, name string, clock *fakeClock, rate int) *Table {
	t.Helper()
	tb, err := NewTable(context.Background(), TableConfig{ConnectionString: conn, Table: name, RatePerMinute: rate, Now: clock.Now})
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
				tb, err := NewTable(ctx, TableConfig{ConnectionString: conn, Table: name, RatePerMinute: 600, Now: clock.Now, perTry: []policy.Policy{counter}})
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

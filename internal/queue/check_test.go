package queue_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

func TestCheckMessageRoundTrip(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, benchFixtureSecret)
	c := watch.Check{
		RequestID: "msg_1", Caller: "entra:9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", StatusHandle: "q3Zk1v0bS9yN7hWm2xJ4cA",
		UPN: "alice@contoso.com", UserID: "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a",
		RevokedAt: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC), After: "15m", Delay: 15 * time.Minute,
	}
	text, err := queue.SealCheck(keys, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	env, signed, err := queue.ParseMessage(text)
	if err != nil || !signed {
		t.Fatalf("ParseMessage = %v, signed %v", err, signed)
	}
	if _, err := keys.Verify(env.Header(), []byte(env.Body), time.Now(), time.Minute, time.Minute); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	var shape map[string]map[string]any
	if err := json.Unmarshal([]byte(env.Body), &shape); err != nil || len(shape) != 1 || shape["check"]["ticket"] != nil || len(shape["check"]) != 8 {
		t.Errorf("body %s; want {\"check\": {8 members, ticket null}}", env.Body)
	}
	got, err := queue.ParseCheck([]byte(env.Body))
	if err != nil || got != c {
		t.Errorf("ParseCheck = %+v, %v; want %+v", got, err, c)
	}
	for _, bad := range []string{
		strings.Replace(env.Body, `"after":"15m"`, `"after":"15m","extra":1`, 1),
		strings.Replace(env.Body, `"userId":"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"`, `"userId":"x' or 1 eq 1"`, 1),
		strings.Replace(env.Body, `"after":"15m"`, `"after":"200h"`, 1),
		env.Body + " {}",
		`{"check":null}`,
	} {
		if _, err := queue.ParseCheck([]byte(bad)); err == nil {
			t.Errorf("queue.ParseCheck(%s) = nil; want refused", bad)
		}
	}
}

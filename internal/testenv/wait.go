package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds and fails the test, naming what, once within has passed. It
// is how tests synchronise with a child or a fake: on the condition itself, never on a sleep that
// merely tends to be long enough. The poll interval starts small and grows to a quarter second, so
// quick conditions are seen quickly and slow ones (an expiring lease) are not hammered.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for every := 5 * time.Millisecond; !cond(); every = min(2*every, 250*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(every)
	}
}

package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, and reports whether it did before within passed. It is how
// tests synchronise with a child or a fake: on the condition itself, never on a sleep that merely
// tends to be long enough. The poll interval starts small and grows to a quarter second, so quick
// conditions are seen quickly and slow ones (an expiring lease) are not hammered. cond is always
// asked once more at the deadline.
func Eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for every := 5 * time.Millisecond; ; every = min(2*every, 250*time.Millisecond) {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(every, left))
	}
}

// WaitFor is Eventually that fails the test, naming what, when cond does not hold within.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

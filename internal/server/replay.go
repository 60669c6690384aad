package server

import "github.com/entra-revoke/entra-revoke/internal/revoke"

// replayable reports whether a request's answer may be remembered and replayed for a repeat of
// its id. Not when a retry could change it (throttled, failed) nor when a configuration change
// could: dry_run (the app going live) and denied (a permission granted). The caller's repeat after
// such a change must run again rather than receive the old answer.
func replayable(res revoke.Result) bool {
	for _, u := range res.Results {
		if u.Status.Retryable() || u.Status == revoke.StatusDryRun || u.Status == revoke.StatusDenied {
			return false
		}
	}
	return true
}

// Package watch is the sign-in watch: after a user's sessions are revoked, it checks at the
// configured times (WATCH_AFTER) whether anyone signed in as that user again, and says so plainly
// with one finding per check. It decides and records; it knows nothing of queues, HTTP, Graph or
// storage, which reach it through the small interfaces declared here.
package watch

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Finding is what one check concluded about the user's sign-ins since the revocation.
type Finding string

// Findings, from worst to best, and the one for a check that could not be made.
const (
	// SignedInAgain: a successful sign-in after the revocation; someone is back in.
	SignedInAgain Finding = "signed_in_again"
	// ReuseBlocked: no success, and at least one sign-in refused because the session or token
	// was revoked: the revocation is doing its job against someone still trying.
	ReuseBlocked Finding = "reuse_blocked"
	// AttemptsFailed: no success, other refused sign-ins (wrong password, MFA, Conditional Access).
	AttemptsFailed Finding = "attempts_failed"
	// Clean: no sign-in since the revocation.
	Clean Finding = "clean"
	// Unavailable: the check could not be made; Result.Reason says why.
	Unavailable Finding = "unavailable"
)

// Reasons of an unavailable check.
const (
	ReasonMissingPermission = "missing_permission" // Graph 403 Authorization_RequestDenied
	ReasonNoPremiumLicense  = "no_premium_license" // Graph 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant
	ReasonUserGone          = "user_gone"          // Graph 404
	ReasonFailed            = "failed"             // anything else, after the check's last delivery
)

// reuseCodes are Entra sign-in error codes that mean "the session or token was revoked":
// 50173 (grant expired after a revocation or password change), 50132 and 50133 (session
// invalid after a revocation or password change) and 70008 (refresh token expired or revoked).
var reuseCodes = []int{50173, 50132, 50133, 70008}

// MaxLatest is how many sign-ins a result lists.
const MaxLatest = 5

// SignIn is one sign-in as the watch needs it: no token, device or correlation ID.
type SignIn struct {
	At          time.Time
	App         string // appDisplayName
	IP          string
	Location    string // city, state, country as Entra recorded them
	ErrorCode   int    // status.errorCode; 0 is a success
	Interactive bool
}

// Seen is a sign-in as a result lists it.
type Seen struct {
	At          string `json:"at"`
	App         string `json:"app"`
	IP          string `json:"ip"`
	Location    string `json:"location"`
	ErrorCode   int    `json:"errorCode"`
	Interactive bool   `json:"interactive"`
}

// Result is one check's outcome for one user, as it is stored in the request's status (the
// user's watch array), sent in events and printed by `handler watch`.
type Result struct {
	After     string  `json:"after"` // as written in WATCH_AFTER
	CheckedAt string  `json:"checkedAt"`
	Finding   Finding `json:"finding"`
	SignIns   int     `json:"signIns"`
	Reason    string  `json:"reason,omitempty"`
	Latest    []Seen  `json:"latest"`
}

// Decide gives the finding for the sign-ins read since the revocation. latest lists successful
// sign-ins first and then refused ones, each group newest first, at most MaxLatest in all: the
// success is what an analyst must see first.
func Decide(after string, checkedAt time.Time, signIns []SignIn) Result {
	r := Result{After: after, CheckedAt: checkedAt.UTC().Format(time.RFC3339), SignIns: len(signIns), Latest: []Seen{}}
	var ok, refused []SignIn
	reuse := false
	for _, s := range signIns {
		if s.ErrorCode == 0 {
			ok = append(ok, s)
			continue
		}
		refused = append(refused, s)
		reuse = reuse || slices.Contains(reuseCodes, s.ErrorCode)
	}
	switch {
	case len(ok) > 0:
		r.Finding = SignedInAgain
	case reuse:
		r.Finding = ReuseBlocked
	case len(refused) > 0:
		r.Finding = AttemptsFailed
	default:
		r.Finding = Clean
	}
	newestFirst := func(a, b SignIn) int { return b.At.Compare(a.At) }
	slices.SortStableFunc(ok, newestFirst)
	slices.SortStableFunc(refused, newestFirst)
	for _, s := range append(ok, refused...) {
		if len(r.Latest) == MaxLatest {
			break
		}
		r.Latest = append(r.Latest, Seen{
			At: s.At.UTC().Format(time.RFC3339), App: s.App, IP: s.IP, Location: s.Location,
			ErrorCode: s.ErrorCode, Interactive: s.Interactive,
		})
	}
	return r
}

// UnavailableResult is the result of a check that could not be made, for reason.
func UnavailableResult(after string, checkedAt time.Time, reason string) Result {
	return Result{After: after, CheckedAt: checkedAt.UTC().Format(time.RFC3339), Finding: Unavailable, Reason: reason, Latest: []Seen{}}
}

// Location joins the parts of a sign-in's location that Entra filled in.
func Location(city, state, country string) string {
	var parts []string
	for _, p := range []string{city, state, country} {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ", ")
}

// ReadError is a Reader's failure. Reason is set when the answer will not change on a retry
// (ReasonMissingPermission, ReasonNoPremiumLicense, ReasonUserGone); empty, the failure is
// transient and a later delivery may succeed.
type ReadError struct {
	Reason string
	// Throttled: no request could be made within the budget (the reports limit's queue, or
	// Graph's 429): nothing is wrong, the check only has to wait its turn.
	Throttled bool
	Err       error
}

func (e *ReadError) Error() string {
	if e.Reason != "" {
		return "read sign-ins: " + e.Reason + ": " + errText(e.Err)
	}
	return "read sign-ins: " + errText(e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

func errText(err error) string {
	if err == nil {
		return "failed"
	}
	return err.Error()
}

// Reader reads a user's sign-ins created at or after since, at most a bounded number of them.
// Errors are *ReadError.
type Reader interface {
	SignIns(ctx context.Context, userID string, since time.Time) ([]SignIn, error)
}

// ErrBusy is returned by Once.Begin while another delivery (on any instance) holds the check.
var ErrBusy = errors.New("sign-in check in progress elsewhere")

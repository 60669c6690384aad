package graph

import (
	"context"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// operation names one kind of Graph call for telemetry. name and data are templates: they never
// contain the user, because dependency telemetry is less protected than the audit events.
type operation struct {
	name string // e.g. "POST /users/{id}/revokeSignInSessions"
	data string // e.g. "https://graph.microsoft.com/v1.0/users/{id}/revokeSignInSessions"
	// anyBody: every 2xx is a success even when its body does not decode (revocation has no
	// result worth reading; Graph may answer 204).
	anyBody bool
	// tries, when positive, replaces the client's maxTries: a caller that paces its own retries
	// (the sign-in reader, within the reports limit) takes one attempt at a time.
	tries int
}

// exchange is what the transport saw of one HTTP attempt.
type exchange struct {
	status     int    // 0 when no response arrived
	requestID  string // Graph's request-id response header
	retryAfter string // raw Retry-After header
}

// tracker follows one logical call (all its retries) through the SDK. It travels in the
// request context because kiota offers no other way to get per-request facts (status,
// headers, token failures) back out of its pipeline. One call's attempts are sequential, so the
// fields need no lock.
type tracker struct {
	op       *operation
	attempts int      // HTTP attempts, across every retry
	last     exchange // the most recent HTTP attempt
	tokenErr error    // set when getting a token failed for the current try
}

type trackerKey struct{}

func withTracker(ctx context.Context, t *tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

func trackerFrom(ctx context.Context) *tracker {
	t, _ := ctx.Value(trackerKey{}).(*tracker)
	return t
}

// observedTransport sits below the SDK's middleware, right above the network, so it sees every
// real HTTP attempt: ours, and any the middleware makes on its own (redirects, CAE challenges).
type observedTransport struct {
	base   http.RoundTripper
	target string // Graph host, for Call.Target
	onCall func(ctx context.Context, c Call)
}

func (o *observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := o.base.RoundTrip(req)
	elapsed := time.Since(start)

	ctx := req.Context()
	t := trackerFrom(ctx)
	var ex exchange
	if err == nil && resp != nil {
		ex = exchange{
			status:     resp.StatusCode,
			requestID:  resp.Header.Get("request-id"),
			retryAfter: resp.Header.Get("Retry-After"),
		}
	}
	name, data := req.Method+" "+"{unknown}", "{unknown}"
	if t != nil {
		t.attempts++
		t.last = ex
		name, data = t.op.name, t.op.data
	}
	if o.onCall != nil {
		o.onCall(ctx, Call{
			Name:       name,
			Target:     o.target,
			Data:       data,
			ResultCode: ex.status,
			Success:    ex.status >= 200 && ex.status < 300,
			Start:      start,
			Duration:   elapsed,
			RequestID:  ex.requestID,
		})
	}
	return resp, err
}

// trackedCredential tells the tracker when a token could not be had, so that a token failure
// is told apart from a request that never left for some other reason. Tokens themselves, and
// CAE claims challenges, are azidentity's business: it caches tokens and refreshes them before
// they expire, and fetches a fresh one when the SDK answers a claims challenge.
type trackedCredential struct {
	cred azcore.TokenCredential
}

func (c *trackedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.cred.GetToken(ctx, opts)
	if err != nil {
		if t := trackerFrom(ctx); t != nil {
			t.tokenErr = err
		}
	}
	return tok, err
}

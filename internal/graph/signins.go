package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/auditlogs"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// RoleAuditLogs lets the identity read sign-in logs: needed by the sign-in watch (WATCH_AFTER).
const RoleAuditLogs = "AuditLog.Read.All"

// Reading sign-ins: pages of 50 (Graph's $top), at most 200 sign-ins, so at most 4 requests per
// check. A user with more than 200 sign-ins since the revocation is a finding already.
const (
	signInsPageSize = 50
	signInsMax      = 200
	// signInsTries bounds attempts of one page, throttled or failing, within the check's budget.
	signInsTries = 5
)

// Graph's error codes that make a check impossible, not merely failed.
const (
	codeDenied    = "Authorization_RequestDenied"
	codeNoPremium = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
)

// Pacer holds calls to auditLogs within Graph's reports limit (5 requests per 10 s per app and
// tenant): Take reserves one request or says how long until one is free.
type Pacer interface {
	Take(ctx context.Context) (wait time.Duration, ok bool)
}

// SignInsReader reads a user's sign-ins from GET /auditLogs/signIns. It implements watch.Reader.
type SignInsReader struct {
	client *Client
	pacer  Pacer
	op     operation
}

var _ watch.Reader = (*SignInsReader)(nil)

// SignInsReader returns a reader of sign-in logs that takes every request from pacer.
func (c *Client) SignInsReader(pacer Pacer) *SignInsReader {
	base := c.adapter.GetBaseUrl()
	return &SignInsReader{client: c, pacer: pacer, op: operation{
		name:  "GET /auditLogs/signIns",
		data:  base + "/auditLogs/signIns?$filter=userId eq '{id}' and createdDateTime ge {time}&$top=50",
		tries: 1,
	}}
}

// SignIns implements watch.Reader: GET /auditLogs/signIns?$filter=userId eq '{id}' and
// createdDateTime ge {since}&$top=50, following @odata.nextLink up to 200 sign-ins. Errors are
// *watch.ReadError: with a Reason for 403 Authorization_RequestDenied (missing_permission),
// 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant (no_premium_license) and 404
// (user_gone); without, for anything a later try may change.
func (r *SignInsReader) SignIns(ctx context.Context, userID string, since time.Time) ([]watch.SignIn, error) {
	if !request.IsObjectID(userID) {
		// The ID goes into an OData filter: only a GUID may.
		return nil, &watch.ReadError{Err: fmt.Errorf("sign-ins of %q: not an object ID", userID)}
	}
	ctx, cancel := withBudget(ctx)
	defer cancel()
	filter := fmt.Sprintf("userId eq '%s' and createdDateTime ge %s", strings.ToLower(userID), since.UTC().Format(time.RFC3339))
	top := int32(signInsPageSize)
	first := auditlogs.NewSignInsRequestBuilderInternal(map[string]string{"baseurl": r.client.adapter.GetBaseUrl()}, r.client.adapter)
	cfg := &auditlogs.SignInsRequestBuilderGetRequestConfiguration{
		QueryParameters: &auditlogs.SignInsRequestBuilderGetQueryParameters{Filter: &filter, Top: &top},
	}
	var out []watch.SignIn
	next := ""
	for len(out) < signInsMax {
		var page models.SignInCollectionResponseable
		err := r.paced(ctx, userID, func(ctx context.Context) error {
			var err error
			if next == "" {
				page, err = first.Get(ctx, cfg)
			} else {
				page, err = auditlogs.NewSignInsRequestBuilder(next, r.client.adapter).Get(ctx, nil)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if page == nil {
			break
		}
		for _, s := range page.GetValue() {
			if len(out) == signInsMax {
				break
			}
			out = append(out, signIn(s))
		}
		next = deref(page.GetOdataNextLink())
		if next == "" {
			break
		}
	}
	return out, nil
}

// paced sends one request at a time, each within the reports limit, retrying throttling (honouring
// Retry-After) and Graph's transient failures while ctx allows.
func (r *SignInsReader) paced(ctx context.Context, userID string, send func(context.Context) error) error {
	for try := 1; ; try++ {
		if err := r.take(ctx); err != nil {
			return &watch.ReadError{Throttled: true, Err: err}
		}
		_, err := r.client.do(ctx, &r.op, userID, send)
		if err == nil {
			return nil
		}
		var ge *revoke.GraphError
		if !errors.As(err, &ge) {
			return &watch.ReadError{Err: err}
		}
		switch {
		case ge.HTTPStatus == http.StatusForbidden && ge.Code == codeDenied:
			return &watch.ReadError{Reason: watch.ReasonMissingPermission, Err: err}
		case ge.HTTPStatus == http.StatusForbidden && ge.Code == codeNoPremium:
			return &watch.ReadError{Reason: watch.ReasonNoPremiumLicense, Err: err}
		case ge.HTTPStatus == http.StatusNotFound:
			return &watch.ReadError{Reason: watch.ReasonUserGone, Err: err}
		case !retryable(ge.HTTPStatus):
			return &watch.ReadError{Err: err}
		}
		delay := r.client.retryDelay("", try)
		if ge.RetryAfter > 0 {
			delay = ge.RetryAfter
		}
		if try >= signInsTries || !fits(ctx, delay) {
			return &watch.ReadError{Throttled: ge.HTTPStatus == http.StatusTooManyRequests, Err: err}
		}
		r.client.logger.Debug("graph call retried", "operation", r.op.name, "status", ge.HTTPStatus, "attempt", try, "wait", delay)
		if err := r.client.wait(ctx, delay); err != nil {
			return &watch.ReadError{Err: err}
		}
	}
}

// take waits for a request within the reports limit, or fails when ctx cannot wait that long.
func (r *SignInsReader) take(ctx context.Context) error {
	if r.pacer == nil {
		return nil
	}
	for {
		wait, ok := r.pacer.Take(ctx)
		if ok {
			return nil
		}
		if !fits(ctx, wait) {
			return fmt.Errorf("reports limit: no request free within the budget (next in %s)", wait)
		}
		if err := r.client.wait(ctx, wait); err != nil {
			return err
		}
	}
}

// signIn keeps what the watch reports of a sign-in; never tokens, device or correlation IDs.
func signIn(s models.SignInable) watch.SignIn {
	out := watch.SignIn{App: deref(s.GetAppDisplayName()), IP: deref(s.GetIpAddress())}
	if t := s.GetCreatedDateTime(); t != nil {
		out.At = t.UTC()
	}
	if l := s.GetLocation(); l != nil {
		out.Location = watch.Location(deref(l.GetCity()), deref(l.GetState()), deref(l.GetCountryOrRegion()))
	}
	if st := s.GetStatus(); st != nil && st.GetErrorCode() != nil {
		out.ErrorCode = int(*st.GetErrorCode())
	}
	if b := s.GetIsInteractive(); b != nil {
		out.Interactive = *b
	}
	out.App, out.IP, out.Location = clean(out.App, 256), clean(out.IP, 64), clean(out.Location, 256)
	return out
}

// auditRoles are the permissions that let an identity read sign-in logs.
var auditRoles = []string{RoleAuditLogs}

// PermissionsFor is Permissions with the sign-in watch's need too: with auditLogs set, reading
// sign-in logs (AuditLog.Read.All) as well as users (User.Read.All, to find a user's object ID).
func PermissionsFor(roles []string, readable, lookups, auditLogs bool) (Permission, []string) {
	verdict, missing := Permissions(roles, readable, lookups || auditLogs)
	if !readable || !auditLogs {
		return verdict, missing
	}
	if !slices.ContainsFunc(roles, func(r string) bool {
		return slices.ContainsFunc(auditRoles, func(a string) bool { return strings.EqualFold(r, a) })
	}) {
		missing = append(missing, RoleAuditLogs)
		verdict = PermissionMissing
	}
	return verdict, missing
}

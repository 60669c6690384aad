// Package graph is the Microsoft Graph client of entra-revoke: it signs users out
// (POST /users/{id}/revokeSignInSessions) and reads them back, with the Function App's managed
// identity, retrying throttling within the caller's time budget and classifying every failure
// into a *revoke.GraphError. It is the only package that imports the Graph SDK, kiota and the
// Graph side of azidentity, so that the rest of the tree stays light and builds fast.
package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	kauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

// DefaultBaseURL is the Graph endpoint of the global cloud (GRAPH_BASE_URL's default).
const DefaultBaseURL = "https://graph.microsoft.com/v1.0"

// DefaultConcurrency is the idle pool size used when Config.Concurrency is not positive
// (GRAPH_CONCURRENCY's default).
const DefaultConcurrency = 8

// defaultBudget bounds a call whose context has no deadline: every outbound call must end.
// Callers normally pass their own (25 s for HTTP).
const defaultBudget = 25 * time.Second

// ErrToken marks a failure to get a Graph access token from the credential. The error never
// holds the token itself.
var ErrToken = errors.New("get graph token")

// errBadUser is returned for a user reference that cannot name a user and could change the
// request path ("", "." or ".."); upstream validation should have refused it already.
var errBadUser = errors.New("invalid user reference")

// Config configures the Graph client.
type Config struct {
	// BaseURL is GRAPH_BASE_URL, default https://graph.microsoft.com/v1.0. The token scope is
	// {scheme}://{host}/.default. Plain http is accepted only for loopback hosts (tests).
	BaseURL string
	// Credential gets Graph tokens: managed identity in production; any TokenCredential in tests.
	Credential azcore.TokenCredential
	// Concurrency is GRAPH_CONCURRENCY: the transport keeps this many idle connections to Graph,
	// so that that many calls in flight reuse connections instead of redialling TLS.
	Concurrency int
	// OnCall, optional, is called once per HTTP attempt (dependency telemetry), failed attempts
	// included. It runs on the request path and must return quickly.
	OnCall func(ctx context.Context, c Call)
	// Logger, optional, receives retry decisions at debug level. It never receives users or tokens.
	Logger *slog.Logger
}

// Call describes one HTTP attempt to Graph, for a RemoteDependencyData item. Name and Data are
// templated and never contain the user: Name "POST /users/{id}/revokeSignInSessions" or
// "GET /users/{id}", Data e.g. "https://graph.microsoft.com/v1.0/users/{id}/revokeSignInSessions",
// Target the Graph host.
type Call struct {
	Name, Target, Data string
	ResultCode         int // 0 if no response
	Success            bool
	Start              time.Time
	Duration           time.Duration
	RequestID          string
}

// Client calls Microsoft Graph. It is safe for concurrent use; make one per process so that its
// connection pool is shared.
type Client struct {
	adapter   *core.GraphRequestAdapterBase
	users     *users.UsersRequestBuilder
	cred      azcore.TokenCredential
	scope     string
	transport *http.Transport // kept for inspection in tests
	logger    *slog.Logger

	revokeOp, lookupOp, sessionsOp operation

	// Retry policy; tests shorten it or replace wait.
	maxTries    int
	backoffBase time.Duration
	backoffMax  time.Duration
	wait        func(ctx context.Context, d time.Duration) error
}

var (
	_ revoke.Revoker    = (*Client)(nil)
	_ revoke.UserReader = (*Client)(nil)
)

// Fields read from Graph; the order is the $select order sent.
var (
	lookupSelect   = []string{"id", "userPrincipalName", "userType"}
	sessionsSelect = []string{"id", "userPrincipalName", "userType", "signInSessionsValidFromDateTime"}
)

// New builds the Graph client: the SDK's default middleware minus its retry handler (this
// package retries, within the caller's deadline) over a transport sized to cfg.Concurrency.
func New(cfg Config) (*Client, error) {
	if cfg.Credential == nil {
		return nil, errors.New("new graph client: no credential")
	}
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("new graph client: %w", err)
	}
	baseURL := strings.TrimSuffix(base.String(), "/")
	scope := scopeOf(base)

	conc := cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		transport = dt.Clone() // keeps net/http's dial, TLS and idle timeouts
	}
	// The SDK's transport keeps 2 idle connections per host: with more calls in flight, every
	// extra one would dial and handshake again. Graph is the only host this transport talks to.
	transport.MaxIdleConnsPerHost = conc
	transport.MaxIdleConns = conc

	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	observed := &observedTransport{base: transport, target: base.Host, onCall: cfg.OnCall}
	httpClient := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(observed, middlewares()...),
		// Revocation and user reads are never redirected: a 3xx is a failed call, and the bearer
		// token goes nowhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		// No client timeout: every call carries a context deadline, which also bounds retries.
	}

	cred := &trackedCredential{cred: cfg.Credential}
	// Only the Graph host gets a token: the provider refuses to attach it to any other host
	// (for example one a redirect points to).
	auth, err := kauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{scope}, []string{base.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("new graph client: auth provider: %w", err)
	}

	// Own serialization registries instead of kiota's process-wide defaults, which only the
	// root msgraph-sdk-go package (not imported, to keep builds light) would fill in.
	parsers := absser.NewParseNodeFactoryRegistry()
	parsers.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	writers := absser.NewSerializationWriterFactoryRegistry()
	writers.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()

	adapter, err := core.NewGraphRequestAdapterBaseWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		auth, core.GraphClientOptions{}, parsers, writers, httpClient)
	if err != nil {
		return nil, fmt.Errorf("new graph client: request adapter: %w", err)
	}
	adapter.SetBaseUrl(baseURL)

	return &Client{
		adapter:   adapter,
		users:     users.NewUsersRequestBuilderInternal(map[string]string{"baseurl": baseURL}, adapter),
		cred:      cfg.Credential,
		scope:     scope,
		transport: transport,
		logger:    logger,
		revokeOp: operation{
			name:    "POST /users/{id}/revokeSignInSessions",
			data:    baseURL + "/users/{id}/revokeSignInSessions",
			anyBody: true,
		},
		lookupOp: operation{
			name: "GET /users/{id}",
			data: baseURL + "/users/{id}?$select=" + strings.Join(lookupSelect, ","),
		},
		sessionsOp: operation{
			name: "GET /users/{id}",
			data: baseURL + "/users/{id}?$select=" + strings.Join(sessionsSelect, ","),
		},
		maxTries:    5,
		backoffBase: time.Second,
		backoffMax:  8 * time.Second,
		wait:        sleep,
	}, nil
}

// middlewares is msgraph-sdk-go-core's default pipeline with only the handlers that matter for
// a bodiless POST and a GET with $select: GraphTelemetryHandler (SdkVersion and a
// client-request-id for Microsoft support), ParametersNameDecodingHandler ($select) and
// UserAgentHandler. Every handler costs a span and a copy of the request, so the others go:
//   - RetryHandler: it would retry 429/503/504 on its own (up to 3 times, up to 180 s), blind to
//     the caller's deadline and invisible to our attempt count; this package is the one retry layer.
//   - UrlReplaceHandler: it rewrites "/users/me-token-to-replace" to "/me" in any path, which
//     would alter a user whose UPN starts with that text; we never address /me.
//   - RedirectHandler: these endpoints never redirect, and a token-bearing call that is redirected
//     fails closed instead (net/http does not follow either: see CheckRedirect).
//   - CompressionHandler: it gzips request bodies; we send none.
//   - HeadersInspectionHandler: it does nothing unless a request asks for it.
func middlewares() []khttp.Middleware {
	all := core.GetDefaultMiddlewaresWithOptions(&core.GraphClientOptions{})
	kept := make([]khttp.Middleware, 0, len(all))
	for _, m := range all {
		switch m.(type) {
		case *core.GraphTelemetryHandler, *khttp.ParametersNameDecodingHandler, *khttp.UserAgentHandler:
			kept = append(kept, m)
		}
	}
	return kept
}

// parseBaseURL validates GRAPH_BASE_URL. A token is only ever sent over https, except to a
// loopback host, which is where test fakes live.
func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := endpoint.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	return u, nil
}

// ManagedIdentity returns azidentity's ManagedIdentityCredential: system-assigned when clientID
// is "", else the user-assigned identity with that client ID (AZURE_CLIENT_ID). It honours
// IDENTITY_ENDPOINT/IDENTITY_HEADER (App Service, Functions).
func ManagedIdentity(clientID string) (azcore.TokenCredential, error) {
	opts := &azidentity.ManagedIdentityCredentialOptions{}
	if clientID != "" {
		opts.ID = azidentity.ClientID(clientID)
	}
	cred, err := azidentity.NewManagedIdentityCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("managed identity credential: %w", err)
	}
	return cred, nil
}

// RevokeSignInSessions invalidates the user's refresh tokens and session cookies. user is an
// object ID or a UPN; it reaches Graph percent-encoded, otherwise unaltered. Any 2xx answer is
// a success. Errors are *revoke.GraphError.
func (c *Client) RevokeSignInSessions(ctx context.Context, user string) (revoke.GraphResult, error) {
	res, err := c.do(ctx, &c.revokeOp, user, func(ctx context.Context) error {
		// PostAsRevokeSignInSessionsPostResponse, minus two costs on the hot path: kiota expands
		// the URL template twice (token and request), so it is expanded once here; and Graph's
		// {"value":true} is not worth deserializing, since any 2xx is a success (operation.anyBody).
		info, err := c.users.ByUserId(user).RevokeSignInSessions().ToPostRequestInformation(ctx, nil)
		if err != nil {
			return err
		}
		u, err := info.GetUri()
		if err != nil {
			return err
		}
		info.SetUri(*u)
		// Every error status maps to Graph's OData error, as in the SDK's request builders.
		return c.adapter.SendNoContent(ctx, info, abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	})
	if err != nil {
		return revoke.GraphResult{}, err
	}
	return res, nil
}

// LookupUser reads the user's id, userPrincipalName and userType. Errors are *revoke.GraphError.
func (c *Client) LookupUser(ctx context.Context, user string) (revoke.User, error) {
	return c.getUser(ctx, &c.lookupOp, user, lookupSelect)
}

// ReadSessions reads the user like LookupUser, plus signInSessionsValidFromDateTime. Errors are
// *revoke.GraphError.
func (c *Client) ReadSessions(ctx context.Context, user string) (revoke.User, error) {
	return c.getUser(ctx, &c.sessionsOp, user, sessionsSelect)
}

func (c *Client) getUser(ctx context.Context, op *operation, user string, sel []string) (revoke.User, error) {
	var got revoke.User
	cfg := &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: sel},
	}
	_, err := c.do(ctx, op, user, func(ctx context.Context) error {
		u, err := c.users.ByUserId(user).Get(ctx, cfg)
		if err != nil {
			return err
		}
		if u == nil {
			return errors.New("empty user response")
		}
		got = revoke.User{
			ID:       deref(u.GetId()),
			UPN:      deref(u.GetUserPrincipalName()),
			UserType: deref(u.GetUserType()),
		}
		if t := u.GetSignInSessionsValidFromDateTime(); t != nil {
			got.SessionsValidFrom = t.UTC()
		}
		// Guard rails compare IDs and UPNs: a user without either cannot be judged.
		if got.ID == "" || got.UPN == "" {
			return errors.New("user response without id or userPrincipalName")
		}
		return nil
	})
	if err != nil {
		return revoke.User{}, err
	}
	return got, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Package entraauth authenticates callers that present a Microsoft Entra ID access token, such as
// a Logic App or a Microsoft Sentinel playbook calling with its managed identity ("Caller// authentication", method 2).
//
// Signing keys come from the tenant's OpenID configuration and are held in a keyfunc/jwkset
// store: loaded in the background so that start-up never waits for Entra, refreshed every hour,
// and refreshed (rate-limited) when a token names a key ID the store does not know, which is how
// Entra key rollover reaches us. Until the first load succeeds every token is refused.
package entraauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
)

const (
	// fetchTimeout bounds each metadata or key-set download made in the background: Entra answers
	// in well under a second, and a hung connection must not stall the retry loop.
	fetchTimeout = 10 * time.Second
	// maxDocumentBytes bounds every response body we read from the metadata and key-set
	// endpoints; Entra's documents are a few KiB, and a broken proxy must not exhaust memory.
	maxDocumentBytes = 1 << 20
	// keyRefreshInterval is how often the key set is re-read in the background. Entra publishes a
	// new key long before signing with it, so an hourly read picks up rollover ahead of time.
	keyRefreshInterval = time.Hour
	// unknownKIDRefreshEvery limits refreshes triggered by a token with an unknown key ID. Anyone
	// can mint such a token, so without a limit every request could make us call Entra; five
	// minutes is the minimum interval Microsoft's own IdentityModel library uses.
	unknownKIDRefreshEvery = 5 * time.Minute
	// unknownKIDRefreshTimeout bounds the request that waits for that refresh: how long it may
	// wait for the rate limiter (in practice: not at all, so a flood is refused at once) and for
	// the download itself.
	unknownKIDRefreshTimeout = 5 * time.Second
	// validateTimeout bounds a whole Validate call, whatever the caller's context allows.
	validateTimeout = 10 * time.Second
	// retryMin and retryMax bound the backoff between failed first loads: quick enough that a
	// short outage at start is over in seconds, slow enough not to hammer Entra during a long one.
	retryMin = 500 * time.Millisecond
	retryMax = time.Minute
)

// Config configures a Validator. TenantID, Audiences and RequiredRole are required.
type Config struct {
	// TenantID is the directory (tenant) ID, a GUID: tokens carry it in iss and tid.
	TenantID string
	// Audiences are the accepted aud values: the API's client ID and/or its Application ID URI.
	Audiences []string
	// RequiredRole is the app role that must be in the token's roles claim. The settings layer
	// applies the default "Sessions.Revoke"; an empty value is a configuration error here, since
	// it would let any token of the tenant for this audience in.
	RequiredRole string
	// AllowedClients, when not empty, lists the client IDs (azp in v2 tokens, appid in v1) that
	// may call; compared case-insensitively.
	AllowedClients []string
	// OpenIDConfigURL is the tenant's OpenID configuration document. Empty means
	// https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration.
	OpenIDConfigURL string
	// HTTPClient, optional, is used for the metadata and key-set downloads. Every download has
	// its own deadline regardless of the client's Timeout.
	HTTPClient *http.Client
	// Logger receives key-load state changes. Nil discards them.
	Logger *slog.Logger
	// Now, optional, is the clock used for exp and nbf; tests set it.
	Now func() time.Time
}

// Validator checks Entra ID access tokens. It is safe for concurrent use.
type Validator struct {
	tenantID       string
	audiences      []string
	requiredRole   string
	allowedClients []string
	configURL      string
	client         *http.Client
	logger         *slog.Logger
	parser         *jwt.Parser
	health         *keyHealth

	// keys is nil until the first successful load; Validate refuses every token until then.
	keys atomic.Pointer[keySet]

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// keySet is what a successful load produces.
type keySet struct {
	keyfunc keyfunc.Keyfunc
	issuers []string // accepted iss values
	stop    func()   // ends the key store's refresh goroutine
}

// New validates cfg and starts loading the OpenID metadata and key set in the background
// (retrying with backoff until ctx ends or Close is called); it never blocks on the network.
func New(ctx context.Context, cfg Config) (*Validator, error) {
	var problems []error

	tenantID, err := parseGUID(cfg.TenantID)
	if err != nil {
		problems = append(problems, fmt.Errorf("tenant id: %w", err))
	}

	var audiences []string
	for _, a := range cfg.Audiences {
		if a = strings.TrimSpace(a); a != "" {
			audiences = append(audiences, a)
		}
	}
	if len(audiences) == 0 {
		problems = append(problems, errors.New("audience: at least one is required"))
	}

	role := strings.TrimSpace(cfg.RequiredRole)
	if role == "" {
		problems = append(problems, errors.New("required role: must not be empty"))
	}

	var allowed []string
	for _, c := range cfg.AllowedClients {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		id, err := parseGUID(c)
		if err != nil {
			// The client ID is not echoed: a misplaced secret in this setting must not reach logs.
			problems = append(problems, fmt.Errorf("allowed client %d: %w", len(allowed)+1, err))
			continue
		}
		allowed = append(allowed, id)
	}

	configURL := strings.TrimSpace(cfg.OpenIDConfigURL)
	if configURL == "" && tenantID != "" {
		configURL = "https://login.microsoftonline.com/" + tenantID + "/v2.0/.well-known/openid-configuration"
	}
	if configURL != "" {
		if err := checkFetchURL(configURL); err != nil {
			problems = append(problems, fmt.Errorf("openid config url: %w", err))
		}
	}

	if len(problems) > 0 {
		return nil, fmt.Errorf("entra auth config: %w", errors.Join(problems...))
	}

	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	ctx, cancel := context.WithCancel(ctx)
	v := &Validator{
		tenantID:       tenantID,
		audiences:      audiences,
		requiredRole:   role,
		allowedClients: allowed,
		configURL:      configURL,
		client:         hardenClient(cfg.HTTPClient),
		logger:         logger,
		health:         &keyHealth{logger: logger},
		cancel:         cancel,
		parser: jwt.NewParser(
			// Entra signs access tokens with RS256 and its key set carries no alg, so the method is
			// pinned here: this is what refuses alg "none" and HS256 signed with the public key.
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
			jwt.WithExpirationRequired(),
			// Two minutes absorbs clock skew between Entra and this host (request contract).
			jwt.WithLeeway(2*time.Minute),
			jwt.WithAudience(audiences...),
			jwt.WithTimeFunc(now),
			// Refuse non-canonical base64 so one token has exactly one encoding.
			jwt.WithStrictDecoding(),
		),
	}
	v.wg.Add(1)
	go v.loadLoop(ctx)
	return v, nil
}

// Ready reports whether the signing keys have been loaded at least once; until then every token
// is refused. Meant for the health route.
func (v *Validator) Ready() bool { return v.keys.Load() != nil }

// Close stops the background loading and refreshing. It is safe to call more than once.
func (v *Validator) Close() {
	v.cancel()
	v.wg.Wait()
	if ks := v.keys.Load(); ks != nil {
		ks.stop()
	}
}

// loadLoop retries the first load with exponential backoff and jitter until it succeeds or ctx
// ends. Later refreshes are the key store's own (hourly, and on unknown key IDs).
func (v *Validator) loadLoop(ctx context.Context) {
	defer v.wg.Done()
	wait := retryMin
	for {
		ks, err := v.load(ctx)
		if err == nil {
			v.keys.Store(ks)
			return
		}
		if ctx.Err() != nil {
			return
		}
		v.health.failed(err)
		// Jitter spreads the retries of instances that started together (a scale-out).
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// load fetches the OpenID metadata and then the key set it points to.
func (v *Validator) load(ctx context.Context) (*keySet, error) {
	md, err := v.fetchMetadata(ctx)
	if err != nil {
		return nil, err
	}

	// The store's refresh goroutine lives as long as storeCtx: cancelled at once if this attempt
	// fails (so retries leak nothing), else when the Validator closes.
	storeCtx, stop := context.WithCancel(ctx)
	store, err := jwkset.NewStorageFromHTTP(md.JWKSURI, jwkset.HTTPClientStorageOptions{
		Client:      v.client,
		Ctx:         storeCtx,
		HTTPTimeout: fetchTimeout,
		// The first download must succeed for the load to count; loadLoop retries it.
		NoErrorReturnFirstHTTPReq: false,
		RefreshErrorHandler:       func(_ context.Context, err error) { v.health.failed(err) },
		RefreshInterval:           keyRefreshInterval,
		Storage:                   &observedStorage{MemoryJWKSet: jwkset.NewMemoryStorage(), health: v.health},
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{md.JWKSURI: store},
		RateLimitWaitMax:  unknownKIDRefreshTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKIDRefreshEvery), 1),
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:     storeCtx,
		Storage: client,
		// Entra's set marks its keys use "sig"; a key meant for anything else never verifies.
		UseWhitelist: []jwkset.USE{jwkset.UseSig},
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("load signing keys: %w", err)
	}

	issuers := []string{
		"https://sts.windows.net/" + v.tenantID + "/",
		"https://login.microsoftonline.com/" + v.tenantID + "/v2.0",
	}
	// A sovereign cloud's metadata names its own v2 issuer (e.g. login.microsoftonline.us); it
	// is already checked to be this tenant's, and it vouches for the keys anyway.
	if !containsFold(issuers, md.Issuer) {
		issuers = append(issuers, md.Issuer)
	}
	return &keySet{keyfunc: kf, issuers: issuers, stop: stop}, nil
}

// metadata is the part of the OpenID configuration we use.
type metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// fetchMetadata downloads and checks the OpenID configuration.
func (v *Validator) fetchMetadata(ctx context.Context) (metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.configURL, nil)
	if err != nil {
		return metadata{}, fmt.Errorf("fetch openid configuration: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return metadata{}, fmt.Errorf("fetch openid configuration: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; the body itself is not trusted for logs.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return metadata{}, fmt.Errorf("fetch openid configuration: %w: %d", ErrMetadataStatus, resp.StatusCode)
	}
	var md metadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		return metadata{}, fmt.Errorf("decode openid configuration: %w", err)
	}
	if err := checkIssuer(md.Issuer, v.tenantID); err != nil {
		return metadata{}, fmt.Errorf("openid configuration issuer: %w", err)
	}
	if err := checkFetchURL(md.JWKSURI); err != nil {
		return metadata{}, fmt.Errorf("openid configuration jwks_uri: %w", err)
	}
	return md, nil
}

// Errors of the key loading, reported in logs (Validate reports ErrKeysUnavailable instead).
var (
	// ErrMetadataStatus is a non-200 answer from the OpenID configuration endpoint.
	ErrMetadataStatus = errors.New("unexpected http status")
	// ErrMetadataIssuer is an OpenID configuration whose issuer is not this tenant's: a wrong
	// ENTRA_OPENID_CONFIG_URL (another tenant, or the "common" endpoint).
	ErrMetadataIssuer = errors.New("issuer is not the configured tenant's")
	// ErrEmptyKeySet is a key set without keys; the previous keys are kept.
	ErrEmptyKeySet = errors.New("key set has no keys")
)

// checkIssuer accepts https://{host}/{tenant}/v2.0 (v2 metadata) or https://{host}/{tenant}/
// (v1 metadata) where tenant is tenantID.
func checkIssuer(issuer, tenantID string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return ErrMetadataIssuer
	}
	if !strings.EqualFold(u.Path, "/"+tenantID+"/v2.0") && !strings.EqualFold(u.Path, "/"+tenantID+"/") {
		return ErrMetadataIssuer
	}
	return nil
}

// checkFetchURL applies the handler's outbound URL rule (internal/endpoint): keys fetched in clear
// text from the network could be replaced by anyone on the path.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid url")
	}
	return endpoint.Check(u)
}

// hardenClient copies c (or a fresh client) with body-size limits and without redirects: Entra
// never redirects these documents, and following one could lead off https.
func hardenClient(c *http.Client) *http.Client {
	var hc http.Client
	if c != nil {
		hc = *c
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = limitTransport{base: base, max: maxDocumentBytes}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

// limitTransport caps response bodies, since jwkset decodes the key set without a limit.
type limitTransport struct {
	base http.RoundTripper
	max  int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// errBodyTooLarge is returned once a response body exceeds maxDocumentBytes.
var errBodyTooLarge = errors.New("response body too large")

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// observedStorage is the key store's memory storage, watched so that key-set downloads report
// success (jwkset only reports failures) and an empty set never replaces the keys we have.
type observedStorage struct {
	*jwkset.MemoryJWKSet
	health *keyHealth
}

func (s *observedStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if len(given) == 0 {
		return ErrEmptyKeySet
	}
	if err := s.MemoryJWKSet.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	s.health.loaded(len(given))
	return nil
}

// keyHealth logs key loading once per state change rather than once per attempt or request.
type keyHealth struct {
	logger *slog.Logger
	mu     sync.Mutex
	state  int // 0 unknown, 1 keys loaded, 2 failing
}

func (h *keyHealth) loaded(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != 1 {
		h.logger.Info("entra signing keys loaded", "keys", n)
	}
	h.state = 1
}

func (h *keyHealth) failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != 2 {
		h.logger.Warn("entra signing keys unavailable", "error", err.Error())
	}
	h.state = 2
}

// parseGUID accepts only the 8-4-4-4-12 form Entra uses for tenant and client IDs, lower-cased.
func parseGUID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) != 36 {
		return "", errors.New("must be a GUID")
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return "", errors.New("must be a GUID")
	}
	return id.String(), nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Package settings reads and validates the handler's configuration (documented settings) from the environment,
// which on Azure Functions is the Function App's application settings.
package settings

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Setting describes one application setting of the documented settings.
type Setting struct {
	Name    string
	Default string
	Secret  bool // never printed
}

// Table lists every setting of the documented settings in the contract's order. Infrastructure templates are checked
// against it, so a setting added here must be added to the contract and the templates too.
var Table = []Setting{
	{Name: "WEBHOOK_SECRETS", Secret: true},
	{Name: "WEBHOOK_TOLERANCE", Default: "5m"},
	{Name: "ENTRA_TENANT_ID"},
	{Name: "ENTRA_AUDIENCE"},
	{Name: "ENTRA_REQUIRED_ROLE", Default: "Sessions.Revoke"},
	{Name: "ENTRA_ALLOWED_CLIENTS"},
	{Name: "ENTRA_OPENID_CONFIG_URL", Default: "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"},
	{Name: "GRAPH_BASE_URL", Default: "https://graph.microsoft.com/v1.0"},
	{Name: "AZURE_CLIENT_ID"},
	{Name: "PROTECTED_USERS"},
	{Name: "ALLOWED_DOMAINS"},
	{Name: "DRY_RUN", Default: "false"},
	{Name: "VERIFY_REVOCATION", Default: "false"},
	{Name: "GRAPH_CONCURRENCY", Default: "8"},
	{Name: "MAX_REVOCATIONS_PER_MINUTE", Default: "600"},
	{Name: "IDEMPOTENCY_TTL", Default: "10m"},
	{Name: "REVOKE_QUEUE", Default: "revoke-requests"},
	{Name: "AzureWebJobsStorage", Secret: true},
	{Name: "QUEUE_ALLOW_UNSIGNED", Default: "false"},
	{Name: "QUEUE_SIGNATURE_MAX_AGE", Default: "24h"},
	{Name: "MAX_DEQUEUE_COUNT", Default: "5"},
	{Name: "APPLICATIONINSIGHTS_CONNECTION_STRING", Secret: true},
	{Name: "TELEMETRY_REDACT_UPN", Default: "false"},
}

// Settings is the parsed configuration.
type Settings struct {
	WebhookSecrets   []string // raw "whsec_" values; see Keys
	Keys             webhook.Keys
	WebhookTolerance time.Duration

	EntraTenantID        string
	EntraAudiences       []string
	EntraRequiredRole    string
	EntraAllowedClients  []string
	EntraOpenIDConfigURL string

	GraphBaseURL  *url.URL
	AzureClientID string

	ProtectedUsers   []string
	AllowedDomains   []string
	DryRun           bool
	VerifyRevocation bool

	GraphConcurrency        int
	MaxRevocationsPerMinute int
	IdempotencyTTL          time.Duration

	RevokeQueue          string
	QueueAllowUnsigned   bool
	QueueSignatureMaxAge time.Duration
	MaxDequeueCount      int

	AppInsightsConnectionString string
	TelemetryRedactUPN          bool

	// Hosting, from the Functions host and App Service rather than the documented settings.
	Addr         string // listen address
	SiteName     string // WEBSITE_SITE_NAME
	InstanceName string // WEBSITE_INSTANCE_ID
}

// WebhookEnabled reports whether Standard Webhooks callers are accepted.
func (s Settings) WebhookEnabled() bool { return s.Keys.Len() > 0 }

// EntraEnabled reports whether Entra ID bearer tokens are accepted.
func (s Settings) EntraEnabled() bool { return s.EntraTenantID != "" }

// LogValue redacts secrets when Settings is logged.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("webhookSecrets", len(s.WebhookSecrets)),
		slog.Bool("entra", s.EntraEnabled()),
		slog.String("graphBaseUrl", urlString(s.GraphBaseURL)),
		slog.Int("protectedUsers", len(s.ProtectedUsers)),
		slog.Any("allowedDomains", s.AllowedDomains),
		slog.Bool("dryRun", s.DryRun),
		slog.Bool("verifyRevocation", s.VerifyRevocation),
		slog.Int("graphConcurrency", s.GraphConcurrency),
		slog.Int("maxRevocationsPerMinute", s.MaxRevocationsPerMinute),
		slog.String("revokeQueue", s.RevokeQueue),
		slog.Bool("telemetry", s.AppInsightsConnectionString != ""),
		slog.String("addr", s.Addr),
	)
}

// Load parses every setting and returns all problems at once, joined, so that an operator fixes
// them in one go. No error message contains a secret's value.
func Load(getenv func(string) string) (Settings, error) {
	p := parser{getenv: getenv}
	s := Settings{
		WebhookTolerance:            p.duration("WEBHOOK_TOLERANCE"),
		EntraTenantID:               p.str("ENTRA_TENANT_ID"),
		EntraAudiences:              p.list("ENTRA_AUDIENCE"),
		EntraRequiredRole:           p.str("ENTRA_REQUIRED_ROLE"),
		EntraAllowedClients:         p.list("ENTRA_ALLOWED_CLIENTS"),
		AzureClientID:               p.str("AZURE_CLIENT_ID"),
		DryRun:                      p.boolean("DRY_RUN"),
		VerifyRevocation:            p.boolean("VERIFY_REVOCATION"),
		GraphConcurrency:            p.integer("GRAPH_CONCURRENCY", 1, 256),
		MaxRevocationsPerMinute:     p.integer("MAX_REVOCATIONS_PER_MINUTE", 0, 1_000_000),
		IdempotencyTTL:              p.duration("IDEMPOTENCY_TTL"),
		RevokeQueue:                 p.str("REVOKE_QUEUE"),
		QueueAllowUnsigned:          p.boolean("QUEUE_ALLOW_UNSIGNED"),
		QueueSignatureMaxAge:        p.duration("QUEUE_SIGNATURE_MAX_AGE"),
		MaxDequeueCount:             p.integer("MAX_DEQUEUE_COUNT", 1, 1000),
		AppInsightsConnectionString: p.str("APPLICATIONINSIGHTS_CONNECTION_STRING"),
		TelemetryRedactUPN:          p.boolean("TELEMETRY_REDACT_UPN"),
		SiteName:                    strings.TrimSpace(getenv("WEBSITE_SITE_NAME")),
		InstanceName:                strings.TrimSpace(getenv("WEBSITE_INSTANCE_ID")),
	}

	if raw := p.str("WEBHOOK_SECRETS"); raw != "" {
		s.WebhookSecrets = splitList(raw, ",")
		keys, err := webhook.ParseSecrets(s.WebhookSecrets)
		if err != nil {
			p.fail("WEBHOOK_SECRETS", err.Error())
		}
		s.Keys = keys
	}

	if s.EntraTenantID != "" && !request.IsObjectID(s.EntraTenantID) {
		p.fail("ENTRA_TENANT_ID", "must be the tenant ID (a GUID)")
	}
	if s.EntraTenantID != "" && len(s.EntraAudiences) == 0 {
		p.fail("ENTRA_AUDIENCE", "is required with ENTRA_TENANT_ID")
	}
	if s.EntraTenantID == "" && len(s.EntraAudiences) > 0 {
		p.fail("ENTRA_TENANT_ID", "is required with ENTRA_AUDIENCE")
	}
	for _, c := range s.EntraAllowedClients {
		if !request.IsObjectID(c) {
			p.fail("ENTRA_ALLOWED_CLIENTS", fmt.Sprintf("%q is not a client ID (GUID)", c))
		}
	}
	if s.EntraTenantID != "" {
		raw := p.str("ENTRA_OPENID_CONFIG_URL")
		raw = strings.ReplaceAll(raw, "{tenant}", s.EntraTenantID)
		if u := p.endpoint("ENTRA_OPENID_CONFIG_URL", raw); u != nil {
			s.EntraOpenIDConfigURL = u.String()
		}
	}
	s.GraphBaseURL = p.endpoint("GRAPH_BASE_URL", p.str("GRAPH_BASE_URL"))
	if s.AzureClientID != "" && !request.IsObjectID(s.AzureClientID) {
		p.fail("AZURE_CLIENT_ID", "must be a client ID (GUID)")
	}

	for _, u := range p.list("PROTECTED_USERS") {
		if !request.IsUPN(u) && !request.IsObjectID(u) {
			p.fail("PROTECTED_USERS", fmt.Sprintf("%q is neither a UPN nor an object ID", u))
			continue
		}
		s.ProtectedUsers = append(s.ProtectedUsers, u)
	}
	for _, d := range p.list("ALLOWED_DOMAINS") {
		d = strings.TrimPrefix(d, "@")
		if !request.IsDomain(d) {
			p.fail("ALLOWED_DOMAINS", fmt.Sprintf("%q is not a domain name", d))
			continue
		}
		s.AllowedDomains = append(s.AllowedDomains, strings.ToLower(d))
	}
	if s.RevokeQueue != "" && !queueName.MatchString(s.RevokeQueue) {
		p.fail("REVOKE_QUEUE", "must be a storage queue name: 3-56 lowercase letters, digits and single hyphens (\"-poison\" is appended for the poison queue)")
	}

	s.Addr = p.listenAddr()

	if !s.WebhookEnabled() && !s.EntraEnabled() && !p.failed("WEBHOOK_SECRETS") && !p.failed("ENTRA_TENANT_ID") {
		p.errs = append(p.errs, errors.New("no caller can authenticate: set WEBHOOK_SECRETS and/or ENTRA_TENANT_ID with ENTRA_AUDIENCE"))
	}
	return s, errors.Join(p.errs...)
}

// queueName is Azure Storage's queue naming rule, with room for the "-poison" suffix.
var queueName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,55}$`)

type parser struct {
	getenv func(string) string
	errs   []error
	bad    map[string]bool
}

func (p *parser) fail(name, msg string) {
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[name] = true
	p.errs = append(p.errs, fmt.Errorf("%s: %s", name, msg))
}

func (p *parser) failed(name string) bool { return p.bad[name] }

// str returns the trimmed value, or the contract default when unset or blank.
func (p *parser) str(name string) string {
	v := strings.TrimSpace(p.getenv(name))
	if v != "" {
		return v
	}
	for _, s := range Table {
		if s.Name == name {
			return s.Default
		}
	}
	return ""
}

func (p *parser) list(name string) []string { return splitList(p.str(name), ",; \t\n") }

func (p *parser) duration(name string) time.Duration {
	v := p.str(name)
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, fmt.Sprintf("%q is not a positive duration such as 90s or 10m", v))
		return 0
	}
	return d
}

func (p *parser) boolean(name string) bool {
	v := p.str(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, fmt.Sprintf("%q is not true or false", v))
	}
	return b
}

func (p *parser) integer(name string, lo, hi int) int {
	v := p.str(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("%q is not a whole number from %d to %d", v, lo, hi))
		return 0
	}
	return n
}

// endpoint parses an absolute URL and insists on HTTPS, except on loopback where local fakes and
// emulators run: a token must never travel in clear text across a network.
func (p *parser) endpoint(name, raw string) *url.URL {
	u, err := endpoint.Parse(raw)
	if err != nil {
		p.fail(name, err.Error())
		return nil
	}
	return u
}
func (p *parser) listenAddr() string {
	if v := strings.TrimSpace(p.getenv("FUNCTIONS_CUSTOMHANDLER_PORT")); v != "" {
		if !validPort(v) {
			p.fail("FUNCTIONS_CUSTOMHANDLER_PORT", fmt.Sprintf("%q is not a port", v))
		}
		// The host forwards from the same machine: never expose the handler beyond loopback.
		return net.JoinHostPort("127.0.0.1", v)
	}
	port := strings.TrimSpace(p.getenv("PORT"))
	if port == "" {
		port = "8080"
	}
	if !validPort(port) {
		p.fail("PORT", fmt.Sprintf("%q is not a port", port))
	}
	return ":" + port
}

func validPort(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 0 && n <= 65535
}

func splitList(v, seps string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

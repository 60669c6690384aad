// Package settings reads and validates the handler's configuration (docs/settings.md) from the environment,
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
	"unicode/utf8"

	"github.com/entra-revoke/entra-revoke/internal/callbackurl"
	"github.com/entra-revoke/entra-revoke/internal/endpoint"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// Setting describes one application setting.
type Setting struct {
	Name    string
	Default string
	Secret  bool // never printed
	Retired bool // no longer configures anything; read only to refuse a value that contradicts its successor
}

// Table lists the handler's own settings in the order of docs/settings.md, which a test keeps in
// step with it. Infrastructure templates are checked against it too, so a setting added here must
// be documented and decided on in the templates.
var Table = []Setting{
	{Name: "WEBHOOK_SECRETS", Secret: true},
	{Name: "QUEUE_SECRETS", Secret: true},
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
	{Name: "IDEMPOTENCY_TTL", Default: "24h"},
	{Name: "STATE_STORE", Default: "auto"},
	{Name: "STATE_TABLE", Default: "revokestate"},
	{Name: "PUBLIC_BASE_URL"},
	{Name: "REVOKE_QUEUE", Default: "revoke-requests"},
	{Name: "WATCH_AFTER"},
	{Name: "WATCH_QUEUE", Default: "revoke-watch"},
	{Name: "CALLBACK_ALLOWED_HOSTS"},
	{Name: "CALLBACK_SECRETS", Secret: true},
	{Name: "CALLBACK_QUEUE", Default: "revoke-callbacks"},
	{Name: "CALLBACK_RETRY_DELAYS", Default: "1m,5m,30m,2h,8h"},
	{Name: "AzureWebJobsStorage", Secret: true},
	{Name: "QUEUE_ALLOW_UNSIGNED", Default: "false"},
	{Name: "QUEUE_SIGNATURE_MAX_AGE", Default: "24h"},
	{Name: "MAX_DEQUEUE_COUNT", Retired: true},
	{Name: "APPLICATIONINSIGHTS_CONNECTION_STRING", Secret: true},
	{Name: "TELEMETRY_REDACT_UPN", Default: "false"},
	{Name: "TELEMETRY_UPN_SALT", Secret: true},
}

// Platform lists what the Functions host and App Service set and the handler reads too, in the
// order of docs/settings.md.
var Platform = []Setting{
	{Name: EnvStorageQueueServiceURI},
	{Name: EnvStorageTableServiceURI},
	{Name: EnvStorageAccountName},
	{Name: EnvStorageClientID},
	{Name: EnvHostMaxDequeueCount},
	{Name: "FUNCTIONS_CUSTOMHANDLER_PORT"},
	{Name: "PORT", Default: "8080"},
	{Name: "WEBSITE_SITE_NAME"},
	{Name: "WEBSITE_INSTANCE_ID"},
}

// Names of platform settings that more than one place needs.
const (
	// The identity-based AzureWebJobsStorage connection, as the Functions host reads it.
	EnvStorage                = "AzureWebJobsStorage"
	EnvStorageQueueServiceURI = "AzureWebJobsStorage__queueServiceUri"
	EnvStorageTableServiceURI = "AzureWebJobsStorage__tableServiceUri"
	EnvStorageAccountName     = "AzureWebJobsStorage__accountName"
	EnvStorageClientID        = "AzureWebJobsStorage__clientId"

	// EnvHostMaxDequeueCount is host.json's extensions.queues.maxDequeueCount set as an app
	// setting, which overrides host.json.
	EnvHostMaxDequeueCount = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
)

// DefaultMaxDequeueCount is the Functions host's maxDequeueCount when neither host.json nor an app
// setting gives one.
const DefaultMaxDequeueCount = 5

// State stores (STATE_STORE once resolved).
const (
	StateTable  = "table"
	StateMemory = "memory"
)

// MinUPNSaltLength is the shortest TELEMETRY_UPN_SALT accepted: upnHash must not be reversible by
// guessing the salt.
const MinUPNSaltLength = telemetry.MinUPNSaltLen

// Mode says which command the settings are loaded for.
type Mode int

const (
	// Server is `handler serve`: some caller must be able to authenticate, and the listener's
	// binding is checked against QUEUE_ALLOW_UNSIGNED.
	Server Mode = iota
	// Operator is the terminal commands (revoke, check, status, hash-upn): nobody calls a terminal,
	// so neither WEBHOOK_SECRETS nor ENTRA_* is needed, and nothing listens.
	Operator
)

// Options says how to load the settings.
type Options struct {
	Mode Mode
	// AppRoot is the directory of the app's host.json (the executable's directory: the host runs
	// defaultExecutablePath from the app root). Empty reads no host.json.
	AppRoot string
	// Names are the names of every environment variable, to warn about misspelt settings;
	// nil checks none.
	Names []string
}

// Settings is the parsed configuration.
type Settings struct {
	WebhookSecrets []string // raw "whsec_" values; see Keys
	Keys           webhook.Keys
	// QueueSecrets (QUEUE_SECRETS) sign what the handler enqueues itself; queue messages verify
	// against them as well as Keys. See QueueSigningKeys.
	QueueSecrets     []string
	QueueKeys        webhook.Keys
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

	StateStore    string   // StateTable or StateMemory: STATE_STORE with "auto" resolved
	StateTable    string   // STATE_TABLE
	PublicBaseURL *url.URL // PUBLIC_BASE_URL without a trailing slash; nil: status links use the request's host

	// Storage is the AzureWebJobsStorage account of the request queue and the state table.
	Storage              Storage
	RevokeQueue          string
	QueueAllowUnsigned   bool
	QueueSignatureMaxAge time.Duration

	// Outcome callbacks (docs/callbacks.md): on when CallbackHosts is enabled.
	CallbackHosts       callbackurl.Hosts
	CallbackKeys        webhook.Keys // CALLBACK_SECRETS: every key signs each callback
	CallbackQueue       string
	CallbackRetryDelays []time.Duration
	// MaxDequeueCount is the host's own maxDequeueCount: the delivery that is a message's last.
	MaxDequeueCount int

	// WatchAfter is WATCH_AFTER: when to check a revoked user's sign-ins, after revokedAt,
	// ascending; empty turns the sign-in watch off. WatchAfterText holds each as written.
	WatchAfter     []time.Duration
	WatchAfterText []string
	WatchQueue     string // WATCH_QUEUE; its poison queue is WatchQueue+"-poison"

	AppInsightsConnectionString string                     // a secret
	Telemetry                   telemetry.ConnectionString // AppInsightsConnectionString parsed; zero when unset
	TelemetryRedactUPN          bool
	TelemetryUPNSalt            string // TELEMETRY_UPN_SALT, the key of upnHash; a secret

	// Warnings are problems that do not stop the start, such as a misspelt setting's name; the
	// caller shows them.
	Warnings []string

	// Hosting, from the Functions host and App Service rather than docs/settings.md.
	Addr         string // listen address
	SiteName     string // WEBSITE_SITE_NAME
	InstanceName string // WEBSITE_INSTANCE_ID
}

// WebhookEnabled reports whether Standard Webhooks callers are accepted.
func (s Settings) WebhookEnabled() bool { return s.Keys.Len() > 0 }

// QueueSigningKeys are the secrets that sign what the handler enqueues itself (deferred requests,
// and any other queue of its own): QUEUE_SECRETS, else WEBHOOK_SECRETS. The first signs; empty
// when neither is set, and then the handler cannot defer.
func (s Settings) QueueSigningKeys() webhook.Keys {
	if s.QueueKeys.Len() > 0 {
		return s.QueueKeys
	}
	return s.Keys
}

// NeedsUserLookups reports whether the handler may read users from Graph, and so needs
// User.Read.All besides User.RevokeSessions.All: VERIFY_REVOCATION reads every user back, and a
// guard rail looks a user up whenever the request names the user in the other form (an object ID
// against UPNs in PROTECTED_USERS or against ALLOWED_DOMAINS, a UPN against a protected object ID).
func (s Settings) NeedsUserLookups() bool {
	return s.VerifyRevocation || len(s.ProtectedUsers) > 0 || len(s.AllowedDomains) > 0 || s.WatchEnabled()
}

// CallbacksEnabled reports whether requests may name a callbackUrl.
func (s Settings) CallbacksEnabled() bool { return s.CallbackHosts.Enabled() }

// EntraEnabled reports whether Entra ID bearer tokens are accepted.
func (s Settings) EntraEnabled() bool { return s.EntraTenantID != "" }

// LogValue redacts secrets when Settings is logged.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("webhookSecrets", len(s.WebhookSecrets)),
		slog.Int("queueSecrets", len(s.QueueSecrets)),
		slog.Bool("entra", s.EntraEnabled()),
		slog.String("graphBaseUrl", urlString(s.GraphBaseURL)),
		slog.Int("protectedUsers", len(s.ProtectedUsers)),
		slog.Any("allowedDomains", s.AllowedDomains),
		slog.Bool("dryRun", s.DryRun),
		slog.Bool("verifyRevocation", s.VerifyRevocation),
		slog.Int("graphConcurrency", s.GraphConcurrency),
		slog.Int("maxRevocationsPerMinute", s.MaxRevocationsPerMinute),
		slog.String("idempotencyTtl", s.IdempotencyTTL.String()),
		slog.String("stateStore", s.StateStore),
		slog.String("stateTable", s.StateTable),
		slog.String("publicBaseUrl", urlString(s.PublicBaseURL)),
		slog.Bool("storage", s.Storage.Configured()),
		slog.Bool("storageIdentity", s.Storage.IdentityBased()),
		slog.String("revokeQueue", s.RevokeQueue),
		slog.Bool("callbacks", s.CallbacksEnabled()),
		slog.Int("callbackSecrets", s.CallbackKeys.Len()),
		slog.String("callbackQueue", s.CallbackQueue),
		slog.Int("maxDequeueCount", s.MaxDequeueCount),
		slog.Any("watchAfter", s.WatchAfterText),
		slog.String("watchQueue", s.WatchQueue),
		slog.Bool("telemetry", s.AppInsightsConnectionString != ""),
		slog.Bool("redactUpn", s.TelemetryRedactUPN),
		slog.String("addr", s.Addr),
	)
}

// Load parses every setting for `handler serve`, without a host.json; see LoadWith.
func Load(getenv func(string) string) (Settings, error) {
	return LoadWith(getenv, Options{})
}

// LoadWith parses every setting and returns all problems at once, joined, so that an operator
// fixes them in one go. No error message contains a secret's value.
func LoadWith(getenv func(string) string, opts Options) (Settings, error) {
	p := parser{getenv: getenv}
	// Every setting is checked for an unresolved Key Vault reference, even one this configuration
	// does not read.
	for _, list := range [][]Setting{Table, Platform} {
		for _, s := range list {
			p.str(s.Name)
		}
	}
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
		StateTable:                  p.str("STATE_TABLE"),
		RevokeQueue:                 p.str("REVOKE_QUEUE"),
		QueueAllowUnsigned:          p.boolean("QUEUE_ALLOW_UNSIGNED"),
		QueueSignatureMaxAge:        p.duration("QUEUE_SIGNATURE_MAX_AGE"),
		AppInsightsConnectionString: p.str("APPLICATIONINSIGHTS_CONNECTION_STRING"),
		TelemetryRedactUPN:          p.boolean("TELEMETRY_REDACT_UPN"),
		TelemetryUPNSalt:            p.str("TELEMETRY_UPN_SALT"),
		SiteName:                    p.str("WEBSITE_SITE_NAME"),
		InstanceName:                p.str("WEBSITE_INSTANCE_ID"),
	}

	if raw := p.str("WEBHOOK_SECRETS"); raw != "" {
		s.WebhookSecrets = splitList(raw, ",")
		keys, err := webhook.ParseSecrets(s.WebhookSecrets)
		if err != nil {
			p.fail("WEBHOOK_SECRETS", err.Error())
		}
		s.Keys = keys
	}

	if raw := p.str("QUEUE_SECRETS"); raw != "" {
		s.QueueSecrets = splitList(raw, ",")
		keys, err := webhook.ParseSecrets(s.QueueSecrets)
		if err != nil {
			p.fail("QUEUE_SECRETS", err.Error())
		}
		s.QueueKeys = keys
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
	if s.RevokeQueue != "" && (!queueName.MatchString(s.RevokeQueue) || len(s.RevokeQueue) < 3 || len(s.RevokeQueue) > 56) {
		p.fail("REVOKE_QUEUE", "must be a storage queue name: 3-56 lowercase letters, digits and single hyphens (\"-poison\" is appended for the poison queue)")
	}

	s.Storage = p.storage()
	s.StateStore = p.stateStore(s.Storage)
	p.callbacks(&s)
	if cs, err := telemetry.ParseConnectionString(s.AppInsightsConnectionString); err != nil {
		p.fail("APPLICATIONINSIGHTS_CONNECTION_STRING", err.Error())
	} else {
		s.Telemetry = cs
	}
	if s.StateTable != "" && !tableName.MatchString(s.StateTable) || strings.EqualFold(s.StateTable, "tables") {
		p.fail("STATE_TABLE", "must be an Azure table name: a letter, then 2-62 letters and digits (not \"tables\")")
	}
	if raw := p.str("PUBLIC_BASE_URL"); raw != "" {
		if u := p.endpoint("PUBLIC_BASE_URL", raw); u != nil {
			u.Path = strings.TrimRight(u.Path, "/")
			u.RawPath = ""
			s.PublicBaseURL = u
		}
	}
	s.MaxDequeueCount = p.maxDequeueCount(opts.AppRoot)
	p.watch(&s)
	p.upnSalt(s.TelemetryRedactUPN, s.TelemetryUPNSalt)

	s.Addr = p.listenAddr()

	if opts.Mode == Server {
		if !s.WebhookEnabled() && !s.EntraEnabled() && !p.failed("WEBHOOK_SECRETS") && !p.failed("ENTRA_TENANT_ID") {
			p.errs = append(p.errs, errors.New("no caller can authenticate: set WEBHOOK_SECRETS and/or ENTRA_TENANT_ID with ENTRA_AUDIENCE"))
		}
		// Off the Functions host the handler listens on every interface, where an unsigned queue
		// message would be anyone's revocation request.
		if s.QueueAllowUnsigned && p.str("FUNCTIONS_CUSTOMHANDLER_PORT") == "" {
			p.fail("QUEUE_ALLOW_UNSIGNED", "true is refused outside the Functions host (FUNCTIONS_CUSTOMHANDLER_PORT unset): the handler then listens beyond loopback and unsigned messages would let anyone in")
		}
	}
	s.Warnings = append(p.warnings, misspellings(opts.Names)...)
	return s, errors.Join(p.errs...)
}

// callbacks parses the CALLBACK_* settings. Callbacks travel through a storage queue, signed
// like deferred requests, so they need the storage account and a secret to sign with.
func (p *parser) callbacks(s *Settings) {
	s.CallbackQueue = p.str("CALLBACK_QUEUE")
	if !queueName.MatchString(s.CallbackQueue) || len(s.CallbackQueue) < 3 || len(s.CallbackQueue) > 56 {
		p.fail("CALLBACK_QUEUE", "must be a storage queue name: 3-56 lowercase letters, digits and single hyphens (\"-poison\" is appended for the poison queue)")
	}
	s.CallbackRetryDelays = p.retryDelays("CALLBACK_RETRY_DELAYS")
	if raw := p.str("CALLBACK_SECRETS"); raw != "" {
		keys, err := webhook.ParseSecrets(splitList(raw, ","))
		if err != nil {
			p.fail("CALLBACK_SECRETS", err.Error())
		}
		s.CallbackKeys = keys
	}
	hosts, err := callbackurl.ParseHosts(p.list("CALLBACK_ALLOWED_HOSTS"))
	if err != nil {
		p.fail("CALLBACK_ALLOWED_HOSTS", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	s.CallbackHosts = hosts
	if !hosts.Enabled() {
		return
	}
	if s.CallbackKeys.Len() == 0 && !p.failed("CALLBACK_SECRETS") {
		p.fail("CALLBACK_SECRETS", "is required with CALLBACK_ALLOWED_HOSTS: callbacks are signed (whsec_ secrets of 24-64 bytes)")
	}
	if !s.Storage.Configured() && !p.failed(EnvStorage) {
		p.fail("CALLBACK_ALLOWED_HOSTS", "callbacks need storage: they are delivered through the CALLBACK_QUEUE queue in AzureWebJobsStorage, which is not set")
	}
	if s.QueueSigningKeys().Len() == 0 && !p.failed("WEBHOOK_SECRETS") && !p.failed("QUEUE_SECRETS") {
		p.fail("CALLBACK_ALLOWED_HOSTS", "callbacks need a queue secret to sign their queue messages: set QUEUE_SECRETS (or WEBHOOK_SECRETS)")
	}
}

// retryDelays parses a schedule of retries after a first attempt: exactly one duration per
// retry, ascending, each at most 7 days (a storage queue's longest visibility delay).
func (p *parser) retryDelays(name string) []time.Duration {
	var out []time.Duration
	for _, f := range p.list(name) {
		d, err := time.ParseDuration(f)
		if err != nil || d < 0 || d > 7*24*time.Hour || len(out) > 0 && d < out[len(out)-1] {
			p.fail(name, fmt.Sprintf("%q is not a list of ascending durations from 0s to 168h", p.str(name)))
			return nil
		}
		out = append(out, d)
	}
	if len(out) != 5 {
		p.fail(name, "must list exactly 5 durations (one per retry after the first attempt)")
		return nil
	}
	return out
}

// stateStore resolves STATE_STORE: auto is the table whenever the storage account has one.
func (p *parser) stateStore(st Storage) string {
	storage := st.Configured() || p.failed(EnvStorage) // a broken connection is reported once
	noTable := "names no table endpoint: add TableEndpoint=… to " + EnvStorage
	if st.IdentityBased() {
		noTable = "has no table service URI and the queue service URI does not name the account: set " + EnvStorageTableServiceURI
	}
	switch v := strings.ToLower(p.str("STATE_STORE")); v {
	case "auto":
		if storage && st.TableServiceURL == "" && !p.failed(EnvStorage) && !p.failed(EnvStorageTableServiceURI) {
			p.warn(fmt.Sprintf("STATE_STORE is auto but the storage account %s; state is kept in this instance's memory", noTable))
			return StateMemory
		}
		if storage {
			return StateTable
		}
		return StateMemory
	case StateMemory:
		return StateMemory
	case StateTable:
		switch {
		case !storage:
			p.fail("STATE_STORE", "table needs AzureWebJobsStorage (a connection string or the identity-based AzureWebJobsStorage__tableServiceUri / __accountName)")
		case st.TableServiceURL == "" && !p.failed(EnvStorage) && !p.failed(EnvStorageTableServiceURI):
			p.fail("STATE_STORE", "table, but the storage account "+noTable)
		}
		return StateTable
	default:
		p.fail("STATE_STORE", fmt.Sprintf("%q is not auto, table or memory", v))
		return ""
	}
}

// upnSalt checks TELEMETRY_UPN_SALT: required with TELEMETRY_REDACT_UPN, since a hash without a
// secret key is reversed by hashing guessed UPNs.
func (p *parser) upnSalt(redact bool, salt string) {
	switch {
	case salt != "" && utf8.RuneCountInString(salt) < MinUPNSaltLength:
		p.fail("TELEMETRY_UPN_SALT", fmt.Sprintf("must be at least %d characters (a random secret, kept in Key Vault)", MinUPNSaltLength))
	case salt == "" && redact && !p.failed("TELEMETRY_REDACT_UPN"):
		p.fail("TELEMETRY_UPN_SALT", "is required with TELEMETRY_REDACT_UPN=true: without a secret key anyone could reverse upnHash by hashing guessed UPNs")
	}
}

// tableName is Azure Table storage's naming rule.
var tableName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)

// queueName is Azure Storage's queue naming rule, with room for the "-poison" suffix.
var queueName = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)

type parser struct {
	getenv   func(string) string
	errs     []error
	bad      map[string]bool
	warnings []string
	// unresolved are settings whose value is a Key Vault reference.
	unresolved map[string]bool
}

func (p *parser) warn(msg string) { p.warnings = append(p.warnings, msg) }

func (p *parser) fail(name, msg string) {
	if p.unresolved[name] {
		return // the unresolved Key Vault reference is the one problem worth reporting
	}
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[name] = true
	p.errs = append(p.errs, fmt.Errorf("%s: %s", name, msg))
}

func (p *parser) failed(name string) bool { return p.bad[name] }

// str returns the trimmed value, or the documented default when unset or blank. A value that is
// still a Key Vault reference is reported and counts as unset, so that no other problem is
// reported about it.
func (p *parser) str(name string) string {
	v := strings.TrimSpace(p.getenv(name))
	if isKeyVaultReference(v) {
		if !p.unresolved[name] {
			p.fail(name, keyVaultProblem)
			if p.unresolved == nil {
				p.unresolved = map[string]bool{}
			}
			p.unresolved[name] = true
		}
		v = ""
	}
	if v != "" {
		return v
	}
	if s, ok := lookup(name); ok {
		return s.Default
	}
	return ""
}

// lookup finds a setting of Table or Platform by its exact name.
func lookup(name string) (Setting, bool) {
	for _, list := range [][]Setting{Table, Platform} {
		for _, s := range list {
			if s.Name == name {
				return s, true
			}
		}
	}
	return Setting{}, false
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
	if v := p.str("FUNCTIONS_CUSTOMHANDLER_PORT"); v != "" {
		if !validPort(v) {
			p.fail("FUNCTIONS_CUSTOMHANDLER_PORT", fmt.Sprintf("%q is not a port", v))
		}
		// The host forwards from the same machine: never expose the handler beyond loopback.
		return net.JoinHostPort("127.0.0.1", v)
	}
	port := p.str("PORT")
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

package telemetry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
	"github.com/entra-revoke/entra-revoke/internal/request"
)

// DefaultIngestionEndpoint is where envelopes go when the connection string names no endpoint.
const DefaultIngestionEndpoint = "https://dc.services.visualstudio.com"

// ErrConnectionString marks a malformed APPLICATIONINSIGHTS_CONNECTION_STRING. The error text names
// the offending key but never repeats the value.
var ErrConnectionString = errors.New("invalid connection string")

// ConnectionString is the parsed APPLICATIONINSIGHTS_CONNECTION_STRING. The zero value means
// telemetry to Application Insights is off.
type ConnectionString struct {
	InstrumentationKey string // a GUID, as written
	IngestionEndpoint  string // scheme://host[/path] without a trailing slash
	AAD                bool   // Authorization=AAD: every batch carries a managed-identity token
}

// Enabled reports whether the connection string names an Application Insights resource.
func (c ConnectionString) Enabled() bool { return c.InstrumentationKey != "" }

// ParseConnectionString parses an Application Insights connection string:
// "InstrumentationKey=…;IngestionEndpoint=…;Authorization=AAD". Keys are case-insensitive and
// unknown keys (LiveEndpoint, ApplicationId, …) are ignored. Without IngestionEndpoint the endpoint
// is built from EndpointSuffix (and Location) as the official SDKs do, else
// DefaultIngestionEndpoint. An empty string gives the zero value and no error (telemetry off).
func ParseConnectionString(s string) (ConnectionString, error) {
	if strings.TrimSpace(s) == "" {
		return ConnectionString{}, nil
	}
	fields := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue // "a=b;" is what the portal's copy button sometimes gives
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || k == "" {
			return ConnectionString{}, fmt.Errorf("%w: a segment is not key=value", ErrConnectionString)
		}
		if _, dup := fields[k]; dup {
			// Two different values for one key are ambiguous: refuse rather than guess.
			return ConnectionString{}, fmt.Errorf("%w: %s appears twice", ErrConnectionString, k)
		}
		fields[k] = v
	}

	var c ConnectionString
	c.InstrumentationKey = fields["instrumentationkey"]
	if c.InstrumentationKey == "" {
		return ConnectionString{}, fmt.Errorf("%w: InstrumentationKey is missing", ErrConnectionString)
	}
	// The key goes into every envelope name; a GUID check keeps anything else out of the wire format.
	if !request.IsObjectID(c.InstrumentationKey) {
		return ConnectionString{}, fmt.Errorf("%w: InstrumentationKey is not a GUID", ErrConnectionString)
	}

	switch auth := fields["authorization"]; {
	case auth == "":
	case strings.EqualFold(auth, "aad"):
		c.AAD = true
	default:
		// Fail closed: an unknown scheme must not silently become unauthenticated ingestion.
		return ConnectionString{}, fmt.Errorf("%w: Authorization must be AAD", ErrConnectionString)
	}

	endpoint := fields["ingestionendpoint"]
	if endpoint == "" {
		endpoint = DefaultIngestionEndpoint
		if suffix := strings.Trim(fields["endpointsuffix"], "./"); suffix != "" {
			endpoint = "https://dc." + suffix
			if loc := strings.Trim(fields["location"], "./"); loc != "" {
				endpoint = "https://" + loc + ".dc." + suffix
			}
		}
	}
	norm, err := normalizeEndpoint(endpoint)
	if err != nil {
		return ConnectionString{}, fmt.Errorf("%w: IngestionEndpoint %v", ErrConnectionString, err)
	}
	c.IngestionEndpoint = norm
	return c, nil
}

// normalizeEndpoint applies the handler's outbound URL rule (internal/endpoint): outcomes and
// bearer tokens must not cross a network in clear text.
func normalizeEndpoint(s string) (string, error) {
	u, err := endpoint.Parse(s)
	if err != nil {
		return "", err
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

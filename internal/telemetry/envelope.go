package telemetry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The Application Insights wire format (the "Breeze" envelope schema), as the official SDKs send it.
type envelope struct {
	Ver  int               `json:"ver"`
	Name string            `json:"name"`
	Time string            `json:"time"`
	IKey string            `json:"iKey"`
	Tags map[string]string `json:"tags"`
	Data envelopeData      `json:"data"`
}

type envelopeData struct {
	BaseType string `json:"baseType"`
	BaseData any    `json:"baseData"`
}

type eventData struct {
	Ver          int                `json:"ver"`
	Name         string             `json:"name"`
	Properties   map[string]string  `json:"properties,omitempty"`
	Measurements map[string]float64 `json:"measurements,omitempty"`
}

type dependencyData struct {
	Ver        int               `json:"ver"`
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	ResultCode string            `json:"resultCode"`
	Duration   string            `json:"duration"`
	Success    bool              `json:"success"`
	Type       string            `json:"type"`
	Target     string            `json:"target"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties,omitempty"`
}

// Event names (SPEC §5).
const (
	eventRevocation = "SessionRevocation"
	eventRejected   = "WebhookRejected"
	eventDropped    = "TelemetryDropped"
)

// Ingestion limits: longer values are truncated by the service anyway; truncating here keeps a
// hostile caller's 64 KiB reason from inflating every batch.
const (
	maxPropertyLen = 8192
	maxTagLen      = 128 // ai.operation.id and friends
	maxNameLen     = 1024
)

// field is one property in the fixed order used for the stdout line.
type field struct{ key, val string }

// measure is one measurement, in order.
type measure struct {
	key string
	val float64
}

// formatDuration renders d as the d.hh:mm:ss.fffffff TimeSpan the ingestion API expects.
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second
	d -= s * time.Second
	return fmt.Sprintf("%d.%02d:%02d:%02d.%07d", days, h, m, s, d/100) // 100 ns ticks
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// hashUPN is the salted SHA-256 sent as upnHash: hex(SHA-256(salt + ":" + lowercase(upn))). UPNs
// are case-insensitive, so the same user always gets the same hash, and an operator can compute
// it in KQL with hash_sha256(strcat(salt, ":", tolower(upn))).
func hashUPN(salt, upn string) string {
	sum := sha256.Sum256([]byte(salt + ":" + strings.ToLower(upn)))
	return hex.EncodeToString(sum[:])
}

// deriveSalt is the salt used when none is configured: the instrumentation key in lowercase.
// It keeps hashes stable across instances and restarts without another setting, but anyone who
// knows the key can test guessed UPNs; a dedicated secret salt is stronger.
func deriveSalt(ikey string) string { return strings.ToLower(ikey) }

// emailLike matches UPN- and e-mail-shaped tokens, percent-encoded or not, including guest UPNs
// such as jane_fabrikam.com#EXT#@contoso.onmicrosoft.com.
var emailLike = regexp.MustCompile(`(?i)[a-z0-9'._!#^~+%-]+(?:@|%40)[a-z0-9-]+(?:\.[a-z0-9-]+)+`)

// usersSegment matches the user reference in a Graph path.
var usersSegment = regexp.MustCompile(`(?i)(/users/)[^/?#\s]+`)

// scrub removes the target user's UPN (as written, path- or query-escaped, any case) and any
// other UPN-shaped token from free text such as Graph's error message.
func scrub(s, upn string) string {
	if s == "" {
		return s
	}
	if upn != "" {
		for _, form := range []string{upn, url.PathEscape(upn), url.QueryEscape(upn)} {
			re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(form))
			s = re.ReplaceAllLiteralString(s, "[upn]")
		}
	}
	return emailLike.ReplaceAllLiteralString(s, "[redacted]")
}

// templateGraph replaces the user reference in a Graph path with {id}, so dependency names
// group by operation and never carry a UPN.
func templateGraph(s string) string {
	return usersSegment.ReplaceAllString(s, "${1}{id}")
}

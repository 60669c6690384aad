package telemetry

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The Application Insights wire format (the "Breeze" envelope schema), as the official SDKs send
// it, encoded with encoding/json.
type envelope struct {
	Ver  int          `json:"ver"`
	Name string       `json:"name"`
	Time time.Time    `json:"time"`
	IKey string       `json:"iKey"`
	Tags tags         `json:"tags"`
	Data envelopeData `json:"data"`
}

type tags struct {
	Role              string `json:"ai.cloud.role"`
	RoleInstance      string `json:"ai.cloud.roleInstance"`
	OperationID       string `json:"ai.operation.id"`
	OperationParentID string `json:"ai.operation.parentId,omitempty"`
	SDKVersion        string `json:"ai.internal.sdkVersion"`
}

type envelopeData struct {
	BaseType string `json:"baseType"`
	BaseData any    `json:"baseData"` // eventData or dependencyData
}

// eventData is an EventData item.
type eventData struct {
	Ver          int                `json:"ver"`
	Name         string             `json:"name"`
	Properties   map[string]string  `json:"properties,omitempty"`
	Measurements map[string]float64 `json:"measurements,omitempty"`
}

// dependencyData is a RemoteDependencyData item.
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

// Event names (telemetry contract).
const (
	eventRevocation    = "SessionRevocation"
	eventRejected      = "WebhookRejected"
	eventDropped       = "TelemetryDropped"
	eventStateFallback = "StateFallback"
)

// Ingestion limits: longer values are truncated by the service anyway; truncating here keeps a
// hostile caller's 64 KiB reason from inflating every batch.
const (
	maxPropertyLen = 8192
	maxTagLen      = 128 // ai.operation.id and friends
	maxNameLen     = 1024
)

// field is one property, in the fixed order of the stdout line.
type field struct{ key, val string }

// measure is one measurement, in order.
type measure struct {
	key string
	val float64
}

// formatDuration renders d as the d.hh:mm:ss.fffffff TimeSpan the ingestion API expects.
func formatDuration(d time.Duration) string {
	d = max(d, 0)
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%d.%02d:%02d:%02d.%07d", days,
		d/time.Hour%24, d/time.Minute%60, d/time.Second%60, d%time.Second/100) // 100 ns ticks
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

// maxErrorLen bounds an error's text in a property.
const maxErrorLen = 1024

// urlQuery matches the query of a URL in free text: storage SDK errors quote the URL they called,
// and a SAS token travels in the query.
var urlQuery = regexp.MustCompile(`(?i)(https?://[^\s?#]+)\?[^\s#]*`)

// errorText is err's first line with URL queries removed, short enough for a property.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	s = urlQuery.ReplaceAllString(strings.TrimSpace(s), "${1}?[query]")
	return truncate(s, maxErrorLen)
}

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
	if templated(s) {
		return s // what the Graph client sends: no regexp on every dependency
	}
	return usersSegment.ReplaceAllString(s, "${1}{id}")
}

// templated reports whether every /users/ segment of s (any case) is already {id}, by the
// segment rule of usersSegment.
func templated(s string) bool {
	const prefix = "/users/"
	for i := 0; i+len(prefix) <= len(s); i++ {
		if s[i] != '/' || !strings.EqualFold(s[i:i+len(prefix)], prefix) {
			continue
		}
		rest, ok := strings.CutPrefix(s[i+len(prefix):], "{id}")
		if !ok || (rest != "" && !strings.ContainsRune("/?#\t\n\f\r ", rune(rest[0]))) {
			return false
		}
	}
	return true
}

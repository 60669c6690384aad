package telemetry

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The Application Insights wire format (the "Breeze" envelope schema), as the official SDKs send it.
// baseData is an item's baseData object, appended by hand (see jsonenc.go).
type baseData interface {
	appendBase(b []byte) []byte
}

// eventData is an EventData item: properties and measurements in their fixed order.
type eventData struct {
	name  string
	props []field
	meas  []measure
}

func (d eventData) appendBase(b []byte) []byte {
	b = append(b, `{"ver":2`...)
	b = appendMember(b, "name", d.name)
	b = appendObject(b, "properties", d.props)
	if len(d.meas) > 0 {
		b = appendKey(b, "measurements")
		b = append(b, '{')
		b = append(appendMeasures(b, d.meas), '}')
	}
	return append(b, '}')
}

// dependencyData is a RemoteDependencyData item.
type dependencyData struct {
	id, name, resultCode, duration string
	success                        bool
	typ, target, data              string
	props                          []field
}

func (d dependencyData) appendBase(b []byte) []byte {
	b = append(b, `{"ver":2`...)
	b = appendMember(b, "id", d.id)
	b = appendMember(b, "name", d.name)
	b = appendMember(b, "resultCode", d.resultCode)
	b = appendMember(b, "duration", d.duration)
	b = appendKey(b, "success")
	b = strconv.AppendBool(b, d.success)
	b = appendMember(b, "type", d.typ)
	b = appendMember(b, "target", d.target)
	b = appendMember(b, "data", d.data)
	b = appendObject(b, "properties", d.props)
	return append(b, '}')
}

// Event names (telemetry contract).
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
	b := make([]byte, 0, 20)
	b = strconv.AppendInt(b, int64(days), 10)
	b = append(b, '.')
	b = appendPadded(b, int64(h), 2)
	b = append(b, ':')
	b = appendPadded(b, int64(m), 2)
	b = append(b, ':')
	b = appendPadded(b, int64(s), 2)
	b = append(b, '.')
	b = appendPadded(b, int64(d/100), 7) // 100 ns ticks
	return string(b)
}

// appendPadded appends 0 <= n < 10^width with leading zeros to width digits (fmt's %0*d, which
// cost more than the rest of a dependency item).
func appendPadded(b []byte, n int64, width int) []byte {
	start := len(b)
	for range width {
		b = append(b, '0')
	}
	for i := len(b) - 1; i >= start && n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
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

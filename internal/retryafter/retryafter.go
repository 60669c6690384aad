// Package retryafter reads the HTTP Retry-After header (RFC 9110 §10.2.3), which Graph and the
// Application Insights ingestion endpoint send when they throttle.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads v as delay-seconds or an HTTP date relative to now, capped at limit. ok is false
// when v is empty or unreadable.
func Parse(v string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(limit/time.Second) {
			return limit, true
		}
		return time.Duration(n) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(at.Sub(now), 0), limit), true
	}
	return 0, false
}

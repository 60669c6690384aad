package settings

import (
	"fmt"
	"strings"
	"time"
)

// The range of a WATCH_AFTER duration. Sign-in logs reach Graph 2–5 minutes after the sign-in, so
// an earlier check would miss what it is looking for; a Storage queue hides a message for at most
// seven days.
const (
	MinWatchAfter = 5 * time.Minute
	MaxWatchAfter = 168 * time.Hour
)

// WatchEnabled reports whether revoked users' sign-ins are checked afterwards (WATCH_AFTER).
func (s Settings) WatchEnabled() bool { return len(s.WatchAfter) > 0 }

// watch parses WATCH_AFTER and WATCH_QUEUE. A watch needs the storage queue to schedule its checks
// on and a secret to sign them with; without either it would silently never check anything, so
// the start stops instead.
func (p *parser) watch(s *Settings) {
	s.WatchQueue = p.str("WATCH_QUEUE")
	if s.WatchQueue != "" && (!queueName.MatchString(s.WatchQueue) || len(s.WatchQueue) < 3 || len(s.WatchQueue) > 56) {
		p.fail("WATCH_QUEUE", "must be a storage queue name: 3-56 lowercase letters, digits and single hyphens (\"-poison\" is appended for the poison queue)")
	} else if s.WatchQueue == s.RevokeQueue {
		p.fail("WATCH_QUEUE", "must differ from REVOKE_QUEUE: the request trigger would refuse the sign-in checks")
	}
	raw := p.str("WATCH_AFTER")
	if raw == "" {
		return
	}
	var prev time.Duration
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		d, err := time.ParseDuration(f)
		switch {
		case err != nil:
			p.fail("WATCH_AFTER", fmt.Sprintf("%q is not a duration such as 15m or 2h", f))
			return
		case d < MinWatchAfter || d > MaxWatchAfter:
			p.fail("WATCH_AFTER", fmt.Sprintf("%q is outside 5m-168h (sign-in logs arrive minutes late; a queue delays a message 7 days at most)", f))
			return
		case d <= prev:
			p.fail("WATCH_AFTER", "durations must be ascending, each once (e.g. 15m,2h)")
			return
		}
		prev = d
		s.WatchAfter = append(s.WatchAfter, d)
		s.WatchAfterText = append(s.WatchAfterText, f)
	}
	switch {
	case !s.Storage.Configured() && !p.failed(EnvStorage):
		p.fail("WATCH_AFTER", "needs AzureWebJobsStorage: the checks are scheduled on the WATCH_QUEUE storage queue")
	case s.Keys.Len() == 0 && !p.failed("WEBHOOK_SECRETS"):
		p.fail("WATCH_AFTER", "needs a queue secret (WEBHOOK_SECRETS) to sign the checks it schedules")
	}
	if p.failed("WATCH_AFTER") {
		s.WatchAfter, s.WatchAfterText = nil, nil
	}
}

package telemetry

import (
	"context"
	"strconv"
	"strings"
	"time"
)

const eventPermission = "GraphPermission"

// Permission is an instance's view of its Microsoft Graph permission (event GraphPermission), as
// health's "graph" reports it.
type Permission struct {
	Graph       string   // "ok", "missing_permission" or "unknown"
	Missing     []string // the application roles the token lacks
	UserLookups bool     // the settings need User.Read.All as well
}

// Permission records the instance's view of its Graph permission as a GraphPermission event, so
// that an alert can see an identity that lacks a role without anyone polling /api/health. Call it
// at each reading (at start, then periodically): the latest event per instance is its current
// view. Nothing is written to stdout; the caller logs changes itself.
func (t *Telemetry) Permission(ctx context.Context, p Permission) {
	if t.sender == nil {
		return
	}
	op := t.operation(ctx, "", "")
	fields := t.finish([]field{
		{"graph", p.Graph},
		{"missingRoles", strings.Join(p.Missing, ",")},
		{"userLookups", strconv.FormatBool(p.UserLookups)},
	}, "")
	t.enqueue(t.envelope(time.Now(), op, "Event", "EventData", eventData{
		Ver: 2, Name: eventPermission, Properties: properties(fields),
	}))
}

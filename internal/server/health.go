package server

import "net/http"

// health is the body of GET /api/health. It is anonymous, so it says whether things work, not how
// they are configured in detail.
type health struct {
	Status    string          `json:"status"`
	Version   string          `json:"version"`
	Auth      healthAuth      `json:"auth"`
	Queue     bool            `json:"queue"`
	State     string          `json:"state"` // "memory", "table" or "degraded" (the table unreachable)
	Telemetry healthTelemetry `json:"telemetry"`
}

type healthAuth struct {
	Webhook         bool `json:"webhook"`
	Entra           bool `json:"entra"`
	EntraKeysLoaded bool `json:"entraKeysLoaded"`
}

type healthTelemetry struct {
	Buffered int64 `json:"buffered"`
	Sent     int64 `json:"sent"`
	Dropped  int64 `json:"dropped"`
	Failed   int64 `json:"failed"`
}

func handleHealth(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := d.Audit.Stats()
		h := health{
			Status:  "ok",
			Version: d.Version,
			Auth:    healthAuth{Webhook: d.Keys.Len() > 0, Entra: d.Tokens != nil},
			Queue:   d.Storage,
			State:   d.State.Mode(),
			Telemetry: healthTelemetry{
				Buffered: st.Buffered, Sent: st.Sent, Dropped: st.Dropped, Failed: st.Failed,
			},
		}
		if d.Tokens != nil {
			h.Auth.EntraKeysLoaded = d.Tokens.Ready()
			if !h.Auth.EntraKeysLoaded && d.Keys.Len() == 0 {
				h.Status = "degraded" // nobody can authenticate until Entra's keys load
			}
		}
		encode(w, http.StatusOK, h)
	})
}

package server_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/server"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// permission is a fixed verdict on the Graph permission.
type permission string

func (p permission) Graph() string { return string(p) }

var _ server.PermissionReporter = permission("")

// Health reports the Graph permission as the reporter last saw it ("unknown" without one) and
// the queue as deferral is wired, and nothing of how either is configured.
func TestHealthGraphAndQueue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		permission server.PermissionReporter
		storage    bool
		wantGraph  string
		wantQueue  bool
	}{
		{"no reporter", nil, false, "unknown", false},
		{"not read yet", permission("unknown"), true, "unknown", true},
		{"permission held", permission("ok"), true, "ok", true},
		{"permission missing", permission("missing_permission"), false, "missing_permission", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := server.NewServer(server.Deps{State: state.NewMemory(state.MemoryConfig{}), Audit: &audit{}, Storage: tt.storage, Permission: tt.permission, Version: "test"})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/api/health", nil))
			var got struct {
				Status string  `json:"status"`
				Graph  *string `json:"graph"`
				Queue  *bool   `json:"queue"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
				t.Fatalf("GET /api/health = %d %s (%v); want 200 JSON", w.Code, w.Body, err)
			}
			if got.Graph == nil || *got.Graph != tt.wantGraph || got.Queue == nil || *got.Queue != tt.wantQueue {
				t.Errorf("health with reporter %v, storage %t = %s; want graph %q, queue %t", tt.permission, tt.storage, w.Body, tt.wantGraph, tt.wantQueue)
			}
		})
	}
}

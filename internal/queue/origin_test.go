package queue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/request"
)

const handle = "c3RhdHVzLWhhbmRsZS0xMjM0NTY3ODkw"

func TestSplitBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		wantReq string // "" with wantErr
		origin  *queue.Origin
		wantErr bool
	}{
		{"no origin: unchanged bytes", `{ "upn" : "alice@contoso.com" }`, `{ "upn" : "alice@contoso.com" }`, nil, false},
		{"no origin, unknown fields left to the request decoder", `{"upn":"a@contoso.com","x":1}`, `{"upn":"a@contoso.com","x":1}`, nil, false},
		{"origin", `{"upn":"alice@contoso.com","deferred":{"requestId":"CHG0042","caller":"webhook:1","statusHandle":"` + handle + `"}}`,
			`{"upn":"alice@contoso.com"}`, &queue.Origin{RequestID: "CHG0042", Caller: "webhook:1", StatusHandle: handle}, false},
		{"origin first, without a handle", `{"deferred":{"caller":"entra:c1","requestId":"r"},"upns":["a@contoso.com","b@contoso.com"],"ticket":"T"}`,
			`{"ticket":"T","upns":["a@contoso.com","b@contoso.com"]}`, &queue.Origin{RequestID: "r", Caller: "entra:c1"}, false},
		{"duplicate member", `{"upn":"a@contoso.com","upn":"b@contoso.com","deferred":{"requestId":"r","caller":"c"}}`, "", nil, true},
		{"duplicate origin", `{"upn":"a@contoso.com","deferred":{"requestId":"r","caller":"c"},"deferred":{"requestId":"s","caller":"c"}}`, "", nil, true},
		{"origin with an unknown member", `{"upn":"a@contoso.com","deferred":{"requestId":"r","caller":"c","trigger":"cli"}}`, "", nil, true},
		{"origin member in another case", `{"upn":"a@contoso.com","deferred":{"RequestId":"r","caller":"c"}}`, "", nil, true},
		{"origin member twice", `{"upn":"a@contoso.com","deferred":{"requestId":"r","caller":"c","caller":"d"}}`, "", nil, true},
		{"origin not an object", `{"upn":"a@contoso.com","deferred":"webhook:1"}`, "", nil, true},
		{"origin member not a string", `{"upn":"a@contoso.com","deferred":{"requestId":1,"caller":"c"}}`, "", nil, true},
		{"origin without a caller", `{"upn":"a@contoso.com","deferred":{"requestId":"r"}}`, "", nil, true},
		{"origin without a request id", `{"upn":"a@contoso.com","deferred":{"caller":"c"}}`, "", nil, true},
		{"caller with a space", `{"upn":"a@contoso.com","deferred":{"requestId":"r","caller":"webhook: 1"}}`, "", nil, true},
		{"handle too short", `{"upn":"a@contoso.com","deferred":{"requestId":"r","caller":"c","statusHandle":"abc"}}`, "", nil, true},
		{"handle not URL-safe", `{"upn":"a@contoso.com","deferred":{"requestId":"r","caller":"c","statusHandle":"` + handle + `/.."}}`, "", nil, true},
		{"trailing data", `{"upn":"a@contoso.com","deferred":{"requestId":"r","caller":"c"}} {}`, "", nil, true},
		{"not an object", `["deferred"]`, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, origin, err := queue.SplitBody([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, queue.ErrOrigin) || req != nil || origin != nil {
					t.Errorf("SplitBody(%s) = %s, %+v, %v; want ErrOrigin and nothing else", tt.body, req, origin, err)
				}
				return
			}
			if err != nil || string(req) != tt.wantReq || (origin == nil) != (tt.origin == nil) || (origin != nil && *origin != *tt.origin) {
				t.Errorf("SplitBody(%s) = %s, %+v, %v; want %s, %+v", tt.body, req, origin, err, tt.wantReq, tt.origin)
			}
		})
	}
}

// The member is the handler's own: the request decoder of POST /api/revoke and of unsigned
// messages refuses it, so no caller can name a request id, caller or status handle.
func TestRequestDecoderRefusesTheOrigin(t *testing.T) {
	t.Parallel()
	body := `{"upn":"alice@contoso.com","deferred":{"requestId":"CHG0042","caller":"entra:someone-else","statusHandle":"` + handle + `"}}`
	if b, err := request.NewValidator().Decode([]byte(body)); err == nil {
		t.Errorf("Decode(%s) = %+v, nil; want the origin refused", body, b)
	}
}

func FuzzSplitBody(f *testing.F) {
	f.Add([]byte(`{"upn":"alice@contoso.com","deferred":{"requestId":"CHG0042","caller":"webhook:1","statusHandle":"` + handle + `"}}`))
	f.Add([]byte(`{"upns":["a@contoso.com"],"deferred":{"requestId":"r","caller":"c"},"dryRun":true}`))
	f.Add([]byte(`{"upn":"a@contoso.com"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, origin, err := queue.SplitBody(body)
		if err != nil {
			if !errors.Is(err, queue.ErrOrigin) || req != nil || origin != nil {
				t.Fatalf("SplitBody(%q) = %q, %+v, %v; want ErrOrigin alone", body, req, origin, err)
			}
			return
		}
		if origin == nil {
			if !bytes.Equal(req, body) {
				t.Fatalf("SplitBody(%q) changed a body without origin to %q", body, req)
			}
			return
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(req, &members); err != nil {
			t.Fatalf("SplitBody(%q) request %q is not an object: %v", body, req, err)
		}
		if _, ok := members[queue.OriginMember]; ok {
			t.Fatalf("SplitBody(%q) request %q still has the origin", body, req)
		}
		if !queue.ValidHandle(origin.StatusHandle) && origin.StatusHandle != "" {
			t.Fatalf("SplitBody(%q) accepted handle %q", body, origin.StatusHandle)
		}
	})
}

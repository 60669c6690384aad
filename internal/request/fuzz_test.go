package request

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// fixtureBodies returns the request bodies inside the host payload fixtures: the body of the raw
// HTTP request, each queue message (decoded twice, as the host double-encodes it) and, for signed
// envelopes, the signed body inside.
func fixtureBodies(tb testing.TB) [][]byte {
	tb.Helper()
	paths, _ := filepath.Glob(filepath.Join(testenv.FixtureDir(tb), "*"))
	var out [][]byte
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			tb.Fatalf("read fixture: %v", err)
		}
		switch {
		case strings.HasSuffix(p, ".txt"):
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				tb.Fatalf("fixture %s is not an HTTP request: %v", p, err)
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				tb.Fatalf("fixture %s: read body: %v", p, err)
			}
			out = append(out, body)
		case strings.HasSuffix(p, ".json"):
			out = append(out, raw)
			var inv struct {
				Data struct {
					Message string `json:"message"`
				}
			}
			if json.Unmarshal(raw, &inv) != nil {
				tb.Fatalf("fixture %s is not a host invocation", p)
			}
			var text string
			if json.Unmarshal([]byte(inv.Data.Message), &text) != nil {
				text = inv.Data.Message
			}
			out = append(out, []byte(text))
			var env struct {
				Body string `json:"body"`
			}
			if json.Unmarshal([]byte(text), &env) == nil && env.Body != "" {
				out = append(out, []byte(env.Body))
			}
		}
	}
	return out
}

func TestFixtureBodiesDecode(t *testing.T) {
	t.Parallel()
	bodies := fixtureBodies(t)
	if len(bodies) == 0 {
		t.Fatal("no fixtures in testdata/host")
	}
	val := NewValidator()
	accepted := 0
	for _, b := range bodies {
		if _, err := val.Decode(b); err == nil {
			accepted++
		}
	}
	// The HTTP body, the unsigned message and the bodies of the four signed envelopes.
	if accepted < 6 {
		t.Errorf("Decode accepted %d fixture bodies; want at least 6", accepted)
	}
}

// FuzzDecode checks that Decode never panics, fails only with *Error, and that whatever it accepts
// satisfies the request rules on its own terms: it re-validates, its users are UPNs or object IDs, and it
// survives a JSON round trip unchanged.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`,
		`{"upns":["alice@contoso.com","jane_fabrikam.com#EXT#@contoso.onmicrosoft.com","3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"],"ticket":"SIR-42"}`,
		`{ "upn": "alice@contoso.com", "ticket": "INC0012345", "reason": "Lost phone", "requestedBy": "analyst@contoso.com", "dryRun": false }`,
		`{"upn":"alice@contoso.com","upn":"bob@contoso.com"}`,
		`{"upn":"alice@contoso.com","UPN":"bob@contoso.com"}`,
		`{"upn":"alice@contoso.com"}{"upn":"bob@contoso.com"}`,
		`{"upn":"[\"a@b.com\"]"}`,
		`{"upns":["a@contoso.com","A@CONTOSO.COM"]}`,
		`{"upns":[]}`,
		`{"upn":"alice@contoso.com","reason":"a\u2028b"}`,
		`{"upn":"alice@contoso.com","dryRun":"true"}`,
		"{\"upn\":\"alice@contoso.com\",\"reason\":\"\xff\"}",
		`null`, `[]`, ``, `{`, `{"a":{"b":[1,2,{"c":null}]}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	for _, b := range fixtureBodies(f) {
		f.Add(b)
	}
	val := NewValidator()
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := val.Decode(body)
		if err != nil {
			var rerr *Error
			if !errors.As(err, &rerr) {
				t.Fatalf("Decode(%q) error = %T %v; want *Error", body, err, err)
			}
			if got.UPN != "" || got.UPNs != nil {
				t.Fatalf("Decode(%q) returned users with an error", body)
			}
			return
		}
		if err := val.Validate(got); err != nil {
			t.Fatalf("Decode(%q) accepted %+v, but Validate says %v", body, got, err)
		}
		users := got.Users()
		if len(users) < 1 || len(users) > MaxUsers {
			t.Fatalf("Decode(%q) accepted %d users; want 1 to %d", body, len(users), MaxUsers)
		}
		if got.UPN != "" && got.UPNs != nil {
			t.Fatalf("Decode(%q) accepted both upn and upns", body)
		}
		for _, u := range users {
			if !IsUPN(u) && !IsObjectID(u) {
				t.Fatalf("Decode(%q) accepted user %q, neither a UPN nor an object ID", body, u)
			}
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", got, err)
		}
		back, err := val.Decode(again)
		if err != nil {
			t.Fatalf("Decode(%q) accepted %+v, but its re-encoding %q is rejected: %v", body, got, again, err)
		}
		if !reflect.DeepEqual(back, got) {
			t.Fatalf("Decode(%q) = %+v, but its re-encoding decodes to %+v", body, got, back)
		}
	})
}

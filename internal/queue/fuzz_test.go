package queue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/queue"
)

// addFixtures seeds a fuzz target with every queue fixture, whole (as invocations) or decoded (as
// message texts).
func addFixtures(f *testing.F, decoded bool) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join(fixturesDir(f), "queue-*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no queue fixtures: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if !decoded {
			f.Add(b)
			continue
		}
		f.Add(mustFixtureMessage(f, filepath.Base(p)))
	}
}

func FuzzParseMessage(f *testing.F) {
	addFixtures(f, true)
	f.Add([]byte(`{"webhook-id":"a","webhook-timestamp":"1","webhook-signature":"v1,x","body":"{}","x":1}`))
	f.Add([]byte(`{"webhook-id":"a","webhook-id":"b","webhook-timestamp":"1","webhook-signature":"","body":""}`))
	f.Fuzz(func(t *testing.T, text []byte) {
		env, signed, err := queue.ParseMessage(text)
		if err != nil {
			if !errors.Is(err, queue.ErrMalformed) || signed || env != (queue.Envelope{}) {
				t.Fatalf("ParseMessage(%q) = %+v, %v, %v; want a zero envelope and ErrMalformed", text, env, signed, err)
			}
			return
		}
		trimmed := bytes.TrimSpace(text)
		if !json.Valid(text) || len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("ParseMessage(%q) accepted something that is not a JSON object", text)
		}
		if !signed {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(text, &fields); err != nil {
				t.Fatalf("ParseMessage(%q) = unsigned, but it is no JSON object: %v", text, err)
			}
			for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "body"} {
				if _, ok := fields[name]; ok {
					t.Fatalf("ParseMessage(%q) = unsigned, but it has %s", text, name)
				}
			}
			return
		}
		// A signed envelope survives a round trip through its own JSON.
		again, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		env2, signed2, err := queue.ParseMessage(again)
		if err != nil || !signed2 || env2 != env {
			t.Fatalf("ParseMessage(Marshal(%+v)) = %+v, %v, %v; want the same envelope", env, env2, signed2, err)
		}
	})
}

package request_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/request"
)

// Benchmarks of request decoding and validation, which every authenticated request and every queue
// message goes through. Cost grows with the number of users (each is checked against Entra's UPN
// rules and for duplicates), so sizes 1, 10 and 100 are measured.

func benchBulkBody(n int) []byte {
	upns := make([]string, n)
	for i := range upns {
		upns[i] = fmt.Sprintf(`"user%03d@contoso.com"`, i)
	}
	return []byte(`{"upns":[` + strings.Join(upns, ",") + `],"ticket":"INC0012345","reason":"Lost phone","requestedBy":"analyst@contoso.com"}`)
}

func BenchmarkDecode(b *testing.B) {
	val := request.NewValidator()
	cases := []struct {
		name  string
		body  []byte
		users int
	}{
		{"single", []byte(`{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`), 1},
		{"guest", []byte(`{"upn":"jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"}`), 1},
		{"object_id", []byte(`{"upn":"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"}`), 1},
		{"bulk10", benchBulkBody(10), 10},
		{"bulk100", benchBulkBody(100), 100},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				got, err := val.Decode(tc.body)
				if err != nil || len(got.Users()) != tc.users {
					b.Fatalf("Decode(%s) = %d users, %v; want %d users", tc.body, len(got.Users()), err, tc.users)
				}
			}
		})
	}

	// Hostile input is refused at least as cheaply as valid input is accepted.
	bad := []struct{ name, body string }{
		{"reject_duplicate_key", `{"upn":"alice@contoso.com","upn":"bob@contoso.com"}`},
		{"reject_bad_upn", `{"upn":"alice@contoso.com/../admin"}`},
		{"reject_unknown_field", `{"upn":"alice@contoso.com","admin":true}`},
	}
	for _, tc := range bad {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			body := []byte(tc.body)
			for b.Loop() {
				var rerr *request.Error
				if _, err := val.Decode(body); !errors.As(err, &rerr) {
					b.Fatalf("Decode(%s) error = %v; want *request.Error", body, err)
				}
			}
		})
	}
}

func BenchmarkIsUPN(b *testing.B) {
	cases := []struct {
		name, in string
		want     bool
	}{
		{"member", "alice@contoso.com", true},
		{"guest", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", true},
		{"max_length", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 44) + ".com", true},
		{"invalid", "alice@contoso.com/../admin", false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := request.IsUPN(tc.in); got != tc.want {
					b.Fatalf("IsUPN(%q) = %v; want %v", tc.in, got, tc.want)
				}
			}
		})
	}
}

package request

import (
	"errors"
	"strings"
	"testing"

	"github.com/entra-revoke/entra-revoke/internal/callbackurl"
)

func TestCallbackURL(t *testing.T) {
	t.Parallel()
	hosts, err := callbackurl.ParseHosts([]string{"hooks.example.com", "*.service-now.com", "localhost", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	on := NewValidator().WithCallbackHosts(hosts)
	tests := []struct {
		name string
		val  *Validator
		url  string
		ok   bool
	}{
		{"https on an exact host", on, "https://hooks.example.com/revoke?token=abc", true},
		{"https below a wildcard", on, "https://acme.service-now.com/api/x_entra/callback", true},
		{"host case and port", on, "https://HOOKS.example.com:8443/x", true},
		{"http to a listed loopback name", on, "http://localhost:9000/hook", true},
		{"http to a listed ::1", on, "http://[::1]:9000/hook", true},
		{"callbacks off", NewValidator(), "https://hooks.example.com/x", false},
		{"http to a public host", on, "http://hooks.example.com/x", false},
		{"loopback not listed", on, "http://127.0.0.1:9000/hook", false},
		{"wildcard apex", on, "https://service-now.com/x", false},
		{"suffix trick", on, "https://evilhooks.example.com/x", false},
		{"suffix trick 2", on, "https://hooks.example.com.evil.net/x", false},
		{"user info", on, "https://user:pw@hooks.example.com/x", false},
		{"user only", on, "https://user@hooks.example.com/x", false},
		{"relative", on, "/x", false},
		{"other scheme", on, "ftp://hooks.example.com/x", false},
		{"javascript", on, "javascript:alert(1)", false},
		{"fragment", on, "https://hooks.example.com/x#frag", false},
		{"too long", on, "https://hooks.example.com/" + strings.Repeat("a", 2048), false},
		{"exactly 2048", on, "https://hooks.example.com/" + strings.Repeat("a", 2048-len("https://hooks.example.com/")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := `{"upn":"alice@contoso.com","callbackUrl":"` + tt.url + `"}`
			b, err := tt.val.Decode([]byte(body))
			if tt.ok {
				if err != nil || b.CallbackURL != tt.url {
					t.Fatalf("Decode(%q) = %q, %v; want the URL accepted", tt.url, b.CallbackURL, err)
				}
				return
			}
			var re *Error
			if !errors.As(err, &re) || len(re.Details) != 1 || re.Details[0].Field != "callbackUrl" {
				t.Fatalf("Decode(%q) = %v; want one problem naming callbackUrl", tt.url, err)
			}
			if strings.Contains(re.Error(), "hooks.example") || strings.Contains(re.Error(), "aaaa") {
				t.Errorf("error %q echoes the URL", re.Error())
			}
		})
	}
	if _, err := on.Decode([]byte(`{"upn":"alice@contoso.com","callbackUrl":""}`)); err == nil {
		t.Errorf(`Decode(callbackUrl "") = nil; want refused`)
	}
}

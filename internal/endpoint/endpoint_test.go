package endpoint

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want error
	}{
		{"https://graph.microsoft.com/v1.0", nil},
		{"https://graph.microsoft.us", nil},
		{"http://127.0.0.1:8080/v1.0", nil},
		{"http://localhost:10001", nil},
		{"http://[::1]:8080", nil},
		{"HTTPS://Graph.Microsoft.com/v1.0", nil},
		{"http://graph.microsoft.com/v1.0", ErrInsecure},
		{"http://10.0.0.1/v1.0", ErrInsecure},
		{"http://127.0.0.1.nip.io/", ErrInsecure},
		{"ftp://graph.microsoft.com", ErrInsecure},
		{"https://user:p4ss@graph.microsoft.com", ErrNotAbsolute},
		{"https://graph.microsoft.com/?sig=secret", ErrNotAbsolute},
		{"https://graph.microsoft.com/#x", ErrNotAbsolute},
		{"/v1.0", ErrNotAbsolute},
		{"graph.microsoft.com", ErrNotAbsolute},
		{"https:opaque", ErrNotAbsolute},
		{"", ErrNotAbsolute},
		{"https://%zz", ErrNotAbsolute},
		{"HTTP://localhost:10001", nil},
		{"http://LOCALHOST:10001", nil},
	}
	for _, tt := range tests {
		_, err := Parse(tt.raw)
		if !errors.Is(err, tt.want) {
			t.Errorf("Parse(%q) = %v; want %v", tt.raw, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "p4ss") || strings.Contains(err.Error(), "secret")) {
			t.Errorf("Parse(%q) error %q repeats the value", tt.raw, err)
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want error
	}{
		{"https://login.microsoftonline.com/tid/discovery/v2.0/keys?p=b2c_1_signin", nil},
		{"http://127.0.0.1:9000/keys?x=1", nil},
		{"http://login.microsoftonline.com/keys", ErrInsecure},
		{"https://u:p4ss@login.microsoftonline.com/keys", ErrNotAbsolute},
		{"/keys", ErrNotAbsolute},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(u); !errors.Is(err, tt.want) {
			t.Errorf("Check(%q) = %v; want %v", tt.raw, err, tt.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"other error", errors.New("plain ?sig=kept"), "plain ?sig=kept"},
		{"query", &url.Error{Op: "Get", URL: "https://a.table.core.windows.net/t?sv=1&sig=s3cret", Err: cause}, `Get "https://a.table.core.windows.net/t": connection refused`},
		{"user info and fragment", &url.Error{Op: "Post", URL: "https://u:s3cret@a.example/p#s3cret", Err: cause}, `Post "https://a.example/p": connection refused`},
		{"wrapped", fmt.Errorf("claim: %w", &url.Error{Op: "Get", URL: "http://127.0.0.1:1/x?sig=s3cret", Err: cause}), `Get "http://127.0.0.1:1/x": connection refused`},
	}
	for _, tt := range tests {
		got := RedactError(tt.err)
		if (got == nil) != (tt.err == nil) || (got != nil && got.Error() != tt.want) {
			t.Errorf("RedactError(%v) = %v; want %q", tt.err, got, tt.want)
		}
		if tt.err != nil && tt.want != tt.err.Error() && !errors.Is(got, cause) {
			t.Errorf("RedactError(%v) = %v; want the cause kept for errors.Is", tt.err, got)
		}
	}
}

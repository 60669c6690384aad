package cli_test

import (
	"os"
	"strings"
	"testing"
)

var allCommands = []string{"serve", "revoke", "sign", "check", "status", "hash-upn", "version"}

// handler --help, -h and help print the command list on stdout and exit 0.
func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			r := mustRun(t, map[string]string{}, "", args...)
			if r.code != 0 {
				t.Fatalf("exit %d; want 0\n%s", r.code, r)
			}
			for _, c := range allCommands {
				if !strings.Contains(r.stdout, "\n  "+c+" ") {
					t.Errorf("stdout does not list %s\n%s", c, r)
				}
			}
			if r.stderr != "" {
				t.Errorf("stderr = %q; want nothing", r.stderr)
			}
		})
	}
}

// A command's --help shows its flags as --flag, as the docs write them, and the settings that
// drive it.
func TestCommandHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"serve", "--help"}, []string{"usage: handler serve", "WEBHOOK_SECRETS", "default 24h", "STATE_STORE", "PUBLIC_BASE_URL", "TELEMETRY_UPN_SALT", "FUNCTIONS_CUSTOMHANDLER_PORT", "docs/settings.md"}},
		{[]string{"help", "serve"}, []string{"usage: handler serve", "STATE_TABLE"}},
		{[]string{"check", "-h"}, []string{"usage: handler check", "GRAPH_BASE_URL", "VERIFY_REVOCATION", "User.Read.All", "AZURE_CLIENT_ID"}},
		{[]string{"revoke", "--help"}, []string{"usage: handler revoke", "\n  --dry-run\n", "\n  --ticket string\n", "PROTECTED_USERS", "APPLICATIONINSIGHTS_CONNECTION_STRING"}},
		{[]string{"sign", "--help"}, []string{"\n  --secret string\n", "WEBHOOK_SECRETS"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := mustRun(t, map[string]string{}, "", tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d; want 0\n%s", r.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q\n%s", w, r)
				}
			}
			if strings.Contains(r.stdout, "\n  -") && !strings.Contains(r.stdout, "\n  --") {
				t.Errorf("flags shown as -flag; want --flag\n%s", r)
			}
		})
	}
}

// mustOpen opens a device as stdin for the binary.
func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// `handler` alone at a terminal, outside the Functions host, explains itself; under the host, or
// without a terminal (a service, a container), it serves as before.
func TestNoArgumentsAtATerminal(t *testing.T) {
	t.Parallel()
	// /dev/zero is a character device like a terminal; /dev/null is what services get.
	const terminal, service = "/dev/zero", os.DevNull
	tests := []struct {
		name     string
		stdin    string
		env      map[string]string
		wantCode int
		want     string // in stdout (code 0) or stderr
	}{
		{"terminal, outside the host", terminal, map[string]string{}, 0, "make run"},
		{"terminal, under the host", terminal, map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "0"}, 2, "no caller can authenticate"},
		{"no terminal, outside the host", service, map[string]string{}, 2, "no caller can authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustRunInput(t, handlerBin, tt.env, mustOpen(t, tt.stdin))
			if r.code != tt.wantCode {
				t.Fatalf("exit %d; want %d\n%s", r.code, tt.wantCode, r)
			}
			out := r.stderr
			if tt.wantCode == 0 {
				out = r.stdout
				for _, c := range allCommands {
					if !strings.Contains(out, "\n  "+c+" ") {
						t.Errorf("the introduction does not list %s\n%s", c, r)
					}
				}
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q\n%s", tt.want, r)
			}
		})
	}
}

package cli_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestHashUPN(t *testing.T) {
	t.Parallel()
	const salt = "a-salt-of-sixteen-or-more"
	// Computed independently of telemetry.HashUPN: HMAC-SHA256 of the lower-case UPN.
	mac := hmac.New(sha256.New, []byte(salt))
	mac.Write([]byte("alice@contoso.com"))
	want := hex.EncodeToString(mac.Sum(nil))

	for _, upn := range []string{"alice@contoso.com", "Alice@Contoso.COM"} {
		r := mustRun(t, map[string]string{"TELEMETRY_UPN_SALT": salt}, "", "hash-upn", upn)
		if r.code != 0 || r.stdout != want+"\n" {
			t.Errorf("hash-upn %s = exit %d, %q; want 0, %q\n%s", upn, r.code, r.stdout, want, r)
		}
		if strings.Contains(r.stdout+r.stderr, salt) {
			t.Errorf("hash-upn printed the salt\n%s", r)
		}
	}

	bad := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no salt", map[string]string{}, []string{"hash-upn", "alice@contoso.com"}, "TELEMETRY_UPN_SALT is not set"},
		{"short salt", map[string]string{"TELEMETRY_UPN_SALT": "short"}, []string{"hash-upn", "alice@contoso.com"}, "TELEMETRY_UPN_SALT: must be at least 16 characters"},
		{"unresolved salt", map[string]string{"TELEMETRY_UPN_SALT": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/upn-salt/)"}, []string{"hash-upn", "alice@contoso.com"}, "TELEMETRY_UPN_SALT: is still a Key Vault reference"},
		{"no UPN", map[string]string{"TELEMETRY_UPN_SALT": salt}, []string{"hash-upn"}, "takes one UPN"},
		{"two UPNs", map[string]string{"TELEMETRY_UPN_SALT": salt}, []string{"hash-upn", "a@contoso.com", "b@contoso.com"}, "takes one UPN"},
		{"not a UPN", map[string]string{"TELEMETRY_UPN_SALT": salt}, []string{"hash-upn", "alice smith"}, "not a user principal name"},
	}
	for _, tt := range bad {
		r := mustRun(t, tt.env, "", tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q, nothing on stdout", tt.name, r.code, r.stderr, tt.want)
		}
	}
}

package request

import (
	"strings"
	"testing"
)

// Lengths at and just past Entra ID's limits: 64 before the @, 48 after, 113 in all.
var (
	local64  = strings.Repeat("a", 64)
	local65  = strings.Repeat("a", 65)
	domain48 = strings.Repeat("d", 44) + ".com" // 48 bytes
	domain49 = strings.Repeat("d", 45) + ".com" // 49 bytes
)

func TestIsUPN(t *testing.T) {
	t.Parallel()
	if len(local64+"@"+domain48) != 113 || len(local65+"@"+domain48) != 114 || len(domain48) != 48 || len(domain49) != 49 {
		t.Fatal("length fixtures are off")
	}
	tests := []struct {
		name string
		in   string
		want bool
	}{
		// Valid.
		{"plain", "alice@contoso.com", true},
		{"upper case", "ALICE@CONTOSO.COM", true},
		{"apostrophe", "o'brien@contoso.com", true},
		{"guest", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", true},
		{"every allowed symbol", "a.b-c_d!e#f^g~h@sub.contoso.co.uk", true},
		{"digits", "0123456789@contoso.com", true},
		{"single char local", "a@contoso.com", true},
		{"hyphenated domain label", "alice@my-contoso.com", true},
		{"numeric inner label", "alice@123.contoso.com", true},
		{"alphanumeric tld", "alice@contoso.x1", true},
		{"64-char local part", local64 + "@contoso.com", true},
		{"48-char domain", "alice@" + domain48, true},
		{"113 total", local64 + "@" + domain48, true},

		// Invalid: shape.
		{"empty", "", false},
		{"no at", "alice.contoso.com", false},
		{"two at", "alice@contoso@fabrikam.com", false},
		{"empty local", "@contoso.com", false},
		{"empty domain", "alice@", false},
		{"only at", "@", false},
		// Invalid: dots.
		{"leading dot", ".alice@contoso.com", false},
		{"trailing dot", "alice.@contoso.com", false},
		{"double dot", "al..ice@contoso.com", false},
		{"only a dot", ".@contoso.com", false},
		// Invalid: lengths.
		{"65-char local part", local65 + "@contoso.com", false},
		{"49-char domain", "alice@" + domain49, false},
		{"114 total", local65 + "@" + domain48, false},
		{"far too long", strings.Repeat("a", 4096) + "@contoso.com", false},
		// Invalid: characters.
		{"slash", "ali/ce@contoso.com", false},
		{"path traversal", "../../me@contoso.com", false},
		{"question mark", "alice?@contoso.com", false},
		{"percent", "ali%40ce@contoso.com", false},
		{"space", "alice smith@contoso.com", false},
		{"leading space", " alice@contoso.com", false},
		{"trailing space", "alice@contoso.com ", false},
		{"tab", "ali\tce@contoso.com", false},
		{"newline at end", "alice@contoso.com\n", false},
		{"carriage return", "alice\r@contoso.com", false},
		{"NUL", "alice\x00@contoso.com", false},
		{"DEL", "alice\x7f@contoso.com", false},
		{"double quote", `"alice"@contoso.com`, false},
		{"backslash", `ali\ce@contoso.com`, false},
		{"square brackets", "alice[0]@contoso.com", false},
		{"angle brackets", "<alice>@contoso.com", false},
		{"parentheses", "(alice)@contoso.com", false},
		{"curly brackets", "{alice}@contoso.com", false},
		{"JSON array in a string", `["a@b.com"]`, false},
		{"comma", "alice,bob@contoso.com", false},
		{"plus", "alice+tag@contoso.com", false},
		{"ampersand", "alice&bob@contoso.com", false},
		{"asterisk", "alice*@contoso.com", false},
		{"dollar", "$alice@contoso.com", false},
		{"equals", "alice=@contoso.com", false},
		{"colon", "alice:@contoso.com", false},
		{"unicode letter in local part", "ålice@contoso.com", false},
		{"unicode letter in domain", "alice@contosö.com", false},
		{"cyrillic lookalike", "аlice@contoso.com", false},
		{"fullwidth at", "alice＠contoso.com", false},
		{"invalid UTF-8", "alice\xff@contoso.com", false},
		// Invalid: domain.
		{"one-label domain", "alice@contoso", false},
		{"label starting with hyphen", "alice@-contoso.com", false},
		{"label ending with hyphen", "alice@contoso-.com", false},
		{"leading dot in domain", "alice@.contoso.com", false},
		{"trailing dot in domain", "alice@contoso.com.", false},
		{"double dot in domain", "alice@contoso..com", false},
		{"underscore in domain", "alice@con_toso.com", false},
		{"IPv4 address", "alice@192.168.0.1", false},
		{"numeric tld", "alice@contoso.123", false},
		{"IP literal", "alice@[127.0.0.1]", false},
		{"port", "alice@contoso.com:443", false},
		{"domain with path", "alice@contoso.com/users", false},
		{"domain with query", "alice@contoso.com?x=1", false},
		{"domain with fragment", "alice@contoso.com#x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsUPN(tt.in); got != tt.want {
				t.Errorf("IsUPN(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestIsDomain(t *testing.T) {
	t.Parallel()
	long253 := strings.Repeat("ab.", 83) + "abcd" // DNS's 253-byte limit
	long254 := long253 + "e"
	tests := []struct {
		in   string
		want bool
	}{
		{"contoso.com", true},
		{"sub.contoso.co.uk", true},
		{"xn--bcher-kva.example", true},
		{strings.Repeat("a", 63) + ".com", true},
		{long253, true},
		{strings.Repeat("a", 64) + ".com", false},
		{long254, false},
		{"", false},
		{"com", false},
		{".com", false},
		{"contoso.", false},
		{"-contoso.com", false},
		{"contoso.com-", false},
		{"1.2.3.4", false},
		{"contoso.42", false},
		{"con toso.com", false},
		{"contoso.com\x00", false},
	}
	for _, tt := range tests {
		if got := IsDomain(tt.in); got != tt.want {
			t.Errorf("IsDomain(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestIsObjectID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a", true},
		{"3F1C2A4E-8B7D-4C1E-9F2A-6B5D4C3E2F1A", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"", false},
		{"3f1c2a4e8b7d4c1e9f2a6b5d4c3e2f1a", false},       // no dashes
		{"{3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a}", false}, // braces
		{"urn:uuid:3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a", false},
		{"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1", false},   // 35
		{"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1aa", false}, // 37
		{"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1g", false},  // non-hex
		{"3f1c2a4e08b7d-4c1e-9f2a-6b5d4c3e2f1a", false},  // dash replaced
		{"3f1c2a4-e8b7d-4c1e-9f2a-6b5d4c3e2f1a", false},  // dash moved
		{"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1\n", false},
		{"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1\x00", false},
		{"3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1ä"[:36], false}, // a torn multi-byte rune
		{"alice@contoso.com", false},
	}
	for _, tt := range tests {
		if got := IsObjectID(tt.in); got != tt.want {
			t.Errorf("IsObjectID(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// FuzzIsUPN checks the invariants the UPN rules promise of anything IsUPN accepts, whatever the input.
func FuzzIsUPN(f *testing.F) {
	for _, s := range []string{
		"alice@contoso.com", "o'brien@contoso.com", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com",
		"a.b-c_d!e#f^g~h@sub.contoso.co.uk", local64 + "@" + domain48, local65 + "@" + domain48,
		"alice@192.168.0.1", `["a@b.com"]`, "a@b@c.com", "ålice@contoso.com", "alice@contoso.com\x00",
		".a@b.co", "a..b@c.co", "a@-b.co", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !IsUPN(s) {
			return
		}
		if n := strings.Count(s, "@"); n != 1 {
			t.Fatalf("IsUPN(%q) = true with %d @; want exactly one", s, n)
		}
		if len(s) > 113 {
			t.Fatalf("IsUPN(%q) = true with %d bytes; want at most 113", s, len(s))
		}
		local, domain, _ := strings.Cut(s, "@")
		if len(local) == 0 || len(local) > 64 || len(domain) == 0 || len(domain) > 48 {
			t.Fatalf("IsUPN(%q) = true with a %d-byte local part and a %d-byte domain", s, len(local), len(domain))
		}
		const localSet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'.-_!#^~"
		const domainSet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
		if i := strings.IndexFunc(local, func(r rune) bool { return !strings.ContainsRune(localSet, r) }); i >= 0 {
			t.Fatalf("IsUPN(%q) = true with %q at byte %d of the local part", s, local[i:], i)
		}
		if i := strings.IndexFunc(domain, func(r rune) bool { return !strings.ContainsRune(domainSet, r) }); i >= 0 {
			t.Fatalf("IsUPN(%q) = true with %q at byte %d of the domain", s, domain[i:], i)
		}
		if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
			t.Fatalf("IsUPN(%q) = true with a leading, trailing or doubled dot", s)
		}
		if !IsDomain(domain) {
			t.Fatalf("IsUPN(%q) = true but IsDomain(%q) = false", s, domain)
		}
		if IsObjectID(s) {
			t.Fatalf("IsUPN(%q) and IsObjectID(%q) both true", s, s)
		}
	})
}

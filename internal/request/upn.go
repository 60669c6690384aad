package request

import "strings"

// UPN length limits of Entra ID: 113 characters, 64 before the @ and 48 after it.
const (
	maxUPN    = 113
	maxLocal  = 64
	maxDomain = 48
)

// IsUPN reports whether s is a user principal name Entra ID accepts: local@domain, the local part
// of A–Z a–z 0–9 ' . - _ ! # ^ ~ with no leading, trailing or doubled dot, the domain a DNS name.
// Guest UPNs (jane_fabrikam.com#EXT#@contoso.onmicrosoft.com) qualify.
func IsUPN(s string) bool {
	if len(s) > maxUPN {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || strings.Contains(domain, "@") {
		return false
	}
	if local == "" || len(local) > maxLocal || len(domain) > maxDomain {
		return false
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		if !localChar(local[i]) {
			return false
		}
	}
	return IsDomain(domain)
}

func localChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("'.-_!#^~", c) >= 0
}

// IsDomain reports whether s is a DNS name of at least two labels, as Entra ID's verified domains
// are: labels of letters, digits and inner hyphens, at most 63 characters each.
func IsDomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	// A top-level label of digits only would make an IP address look like a domain.
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}

// IsObjectID reports whether s is an Entra object ID: a GUID in its 8-4-4-4-12 hexadecimal form.
func IsObjectID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

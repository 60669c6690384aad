package settings

import (
	"fmt"
	"slices"
	"strings"
)

// keyVaultPrefix starts an App Service Key Vault reference. The platform replaces the reference by
// the secret before the process starts; one still visible was not resolved (a missing secret, or
// an identity without access to the vault).
const keyVaultPrefix = "@microsoft.keyvault("

// isKeyVaultReference reports whether v is a literal, unresolved Key Vault reference.
func isKeyVaultReference(v string) bool {
	return len(v) >= len(keyVaultPrefix) && strings.EqualFold(v[:len(keyVaultPrefix)], keyVaultPrefix)
}

// keyVaultProblem is what an unresolved reference means and what to do about it.
const keyVaultProblem = "is still a Key Vault reference (@Microsoft.KeyVault(…)): the platform could not resolve it. " +
	"Check that the secret exists and that the app's identity may read it (Key Vault Secrets User), " +
	"then restart the app; the Function App's Environment variables blade shows the reference's status"

// variants are names people write for a setting that edit distance does not catch.
var variants = map[string]string{
	"TELEMETRY_SALT":                "TELEMETRY_UPN_SALT",
	"UPN_SALT":                      "TELEMETRY_UPN_SALT",
	"REDACT_UPN":                    "TELEMETRY_REDACT_UPN",
	"GRAPH_URL":                     "GRAPH_BASE_URL",
	"GRAPH_ENDPOINT":                "GRAPH_BASE_URL",
	"APPINSIGHTS_CONNECTION_STRING": "APPLICATIONINSIGHTS_CONNECTION_STRING",
	"MAX_REVOCATIONS":               "MAX_REVOCATIONS_PER_MINUTE",
	"ENTRA_ROLE":                    "ENTRA_REQUIRED_ROLE",
	"REQUIRED_ROLE":                 "ENTRA_REQUIRED_ROLE",
	"QUEUE_NAME":                    "REVOKE_QUEUE",
	"STATE_TABLE_NAME":              "STATE_TABLE",
	"PUBLIC_URL":                    "PUBLIC_BASE_URL",
	"BASE_URL":                      "PUBLIC_BASE_URL",
}

// misspellings warns about environment variables whose names look like one of the settings but
// are not: a setting silently ignored (DRYRUN=true) is worse than one refused. Only names close
// to ours are named, and never their values.
func misspellings(names []string) []string {
	var known []string
	for _, list := range [][]Setting{Table, Platform} {
		for _, s := range list {
			known = append(known, s.Name)
		}
	}
	var warnings []string
	seen := map[string]bool{}
	for _, name := range names {
		if name == "" || seen[name] || slices.Contains(known, name) {
			continue
		}
		seen[name] = true
		meant := closest(name, known)
		if meant == "" {
			continue
		}
		note := ""
		if strings.EqualFold(name, meant) {
			note = " (names are case-sensitive)"
		}
		warnings = append(warnings, fmt.Sprintf("%s is not a setting and is ignored: did you mean %s?%s", name, meant, note))
	}
	slices.Sort(warnings)
	return warnings
}

// closest returns the setting name meant by name, or "" when name resembles none closely enough.
func closest(name string, known []string) string {
	if v, ok := variants[strings.ToUpper(name)]; ok {
		return v
	}
	n := normalize(name)
	best, bestDist := "", 0
	for _, k := range known {
		kn := normalize(k)
		limit := 2
		if len(kn) <= 6 {
			limit = 1
		}
		d := distance(n, kn)
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// normalize drops case and separators, so that DRYRUN, dry_run and Dry-Run are one name.
func normalize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '_' || r == '-' || r == '.':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

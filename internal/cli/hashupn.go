package cli

import (
	"fmt"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/telemetry"
)

const hashUPNAbout = `Prints the upnHash that telemetry records for UPN when TELEMETRY_REDACT_UPN is on: the
hex HMAC-SHA256, keyed by TELEMETRY_UPN_SALT, of the lower-case UPN. Query Application Insights
with the hash (docs/telemetry.md), never with the salt. It prints the hash alone.

settings that drive it:
  TELEMETRY_UPN_SALT   the Function App's salt (a secret: set it in the environment, not on the
                       command line)
`

// hashUPN prints a UPN's upnHash, so that an analyst can find one user's events in redacted
// telemetry. The salt comes from the environment only: a flag would show in process lists.
func hashUPN(env Env, args []string) error {
	c := newCommand(env, "hash-upn", "hash-upn UPN", hashUPNAbout)
	if err := c.parse(args); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return usagef("hash-upn takes one UPN")
	}
	upn := c.Arg(0)
	if !request.IsUPN(upn) {
		return usagef("hash-upn: %q is not a user principal name (user@domain); object IDs are recorded as they are, in userId", upn)
	}
	cfg, err := loadConfig(env, settings.Operator)
	if err != nil {
		return err
	}
	if cfg.TelemetryUPNSalt == "" {
		return usagef("hash-upn: TELEMETRY_UPN_SALT is not set: export the Function App's value (it is a secret, best read from its Key Vault)")
	}
	fmt.Fprintln(env.Stdout, telemetry.HashUPN(cfg.TelemetryUPNSalt, upn))
	return nil
}

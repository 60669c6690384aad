package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// sign prints Standard Webhooks headers for a body read on stdin, for setting up and testing
// callers. The secret comes from --secret or, better (flags show in process lists), from the first
// entry of WEBHOOK_SECRETS.
func sign(env Env, args []string) error {
	fs := newCommand(env, "sign", "sign [--secret whsec_…] [--id ID] [--curl URL] < body.json",
		"Signs the body read on stdin with the first of WEBHOOK_SECRETS (or --secret: flags show in\nprocess lists, the environment does not).\n")
	secret := fs.String("secret", "", "signing secret (default: the first of WEBHOOK_SECRETS)")
	id := fs.String("id", "", "webhook-id (default: a new msg_… id)")
	curl := fs.String("curl", "", "print a ready curl command for this URL instead of headers")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sign reads the body on stdin and takes no arguments")
	}
	if *secret == "" {
		first, _, _ := strings.Cut(env.Getenv("WEBHOOK_SECRETS"), ",")
		*secret = strings.TrimSpace(first)
	}
	if *secret == "" {
		return usagef("no secret: pass --secret or set WEBHOOK_SECRETS")
	}
	keys, err := webhook.ParseSecrets([]string{*secret})
	if err != nil {
		return usagef("invalid secret: %v", err)
	}
	if *id == "" {
		*id = "msg_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	body, err := io.ReadAll(io.LimitReader(env.Stdin, request.MaxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(body) > request.MaxBodyBytes {
		return usagef("body exceeds %d bytes", request.MaxBodyBytes)
	}
	h, err := keys.Headers(*id, time.Now(), body)
	if err != nil {
		return err
	}
	names := []string{webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature}
	if *curl == "" {
		for _, n := range names {
			fmt.Fprintf(env.Stdout, "%s: %s\n", n, h.Get(n))
		}
		return nil
	}
	fmt.Fprintf(env.Stdout, "curl -sS -X POST %s \\\n  -H 'Content-Type: application/json' \\\n", shellQuote(*curl))
	for _, n := range names {
		fmt.Fprintf(env.Stdout, "  -H %s \\\n", shellQuote(n+": "+h.Get(n)))
	}
	fmt.Fprintf(env.Stdout, "  --data-binary %s\n", shellQuote(string(body)))
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

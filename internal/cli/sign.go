package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/webhook"
)

// sign prints Standard Webhooks headers for a body read on stdin, for setting up and testing
// callers. The secret comes from the first entry of WEBHOOK_SECRETS or from a file, never from a
// flag: arguments show in process lists and shell history.
func sign(env Env, args []string) error {
	fs := newCommand(env, "sign", "sign [--secret-file FILE] [--id ID] [--curl URL] < body.json",
		"Signs the body read on stdin with the first of WEBHOOK_SECRETS, or with the secret in FILE\n(its first line). A secret is never taken as an argument: arguments show in process lists\nand shell history.\n")
	secretFlag := fs.String("secret", "", "refused: put the secret in WEBHOOK_SECRETS or a file (--secret-file)")
	secretFile := fs.String("secret-file", "", "file whose first line is the signing secret (default: the first of WEBHOOK_SECRETS)")
	id := fs.String("id", "", "webhook-id (default: a new msg_… id)")
	curl := fs.String("curl", "", "print a ready curl command for this URL instead of headers")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sign reads the body on stdin and takes no arguments")
	}
	if *secretFlag != "" {
		return usagef("--secret would put the secret in the process list and shell history: set WEBHOOK_SECRETS or use --secret-file FILE")
	}
	secret, err := signingSecret(env, *secretFile)
	if err != nil {
		return err
	}
	keys, err := webhook.ParseSecrets([]string{secret})
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

// signingSecret is the first line of file, else the first entry of WEBHOOK_SECRETS.
func signingSecret(env Env, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usagef("--secret-file: %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if s := strings.TrimSpace(line); s != "" {
			return s, nil
		}
		return "", usagef("--secret-file %s is empty", file)
	}
	first, _, _ := strings.Cut(env.Getenv("WEBHOOK_SECRETS"), ",")
	if s := strings.TrimSpace(first); s != "" {
		return s, nil
	}
	return "", usagef("no secret: set WEBHOOK_SECRETS or pass --secret-file FILE")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

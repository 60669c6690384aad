package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/uuid"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
)

// chunkBudget bounds one chunk of users (GRAPH_CONCURRENCY of them, processed in parallel). The
// webhook gives a whole request 25 s because its caller is waiting on an HTTP timeout; an
// operator is not, so Graph's Retry-After is honoured for longer before a user is reported
// throttled. Every Graph call also carries its own deadline inside the Graph client.
const chunkBudget = 2 * time.Minute

// preflightBudget bounds the sign-in check made before revoking: DefaultAzureCredential may probe
// IMDS and run `az`, each of which takes a second or two on a laptop.
const preflightBudget = 60 * time.Second

// closeBudget bounds the telemetry flush at exit (the server gets 10 s at shutdown as well).
const closeBudget = 10 * time.Second

const revokeAbout = `Revokes with the webhook's engine and guard rails, signed in with DefaultAzureCredential
(az login, a managed identity, ...). Exit 0 when every user is revoked or dry_run, 1 otherwise,
2 on usage errors (an invalid UPN is one).

settings that drive it (docs/settings.md):
  PROTECTED_USERS, ALLOWED_DOMAINS, DRY_RUN, VERIFY_REVOCATION, GRAPH_BASE_URL,
  GRAPH_CONCURRENCY, MAX_REVOCATIONS_PER_MINUTE, AZURE_CLIENT_ID
  APPLICATIONINSIGHTS_CONNECTION_STRING   outcomes recorded with trigger "cli"
  TELEMETRY_REDACT_UPN, TELEMETRY_UPN_SALT
`

// revokeCmd runs the engine from a terminal: the same settings, guard rails and Graph client as
// the webhook, signed in with DefaultAzureCredential instead of the Function App's identity.
func revokeCmd(ctx context.Context, env Env, args []string) error {
	fs := newCommand(env, "revoke", "revoke [--dry-run] [--ticket T] [--reason R] [--json] [--verbose] UPN|objectID...", revokeAbout)
	dryRun := fs.Bool("dry-run", false, "apply the guard rails but revoke nothing")
	ticket := fs.String("ticket", "", "ticket number recorded with each outcome (≤ 256 printable characters)")
	reason := fs.String("reason", "", "reason recorded with each outcome (≤ 1024 characters)")
	asJSON := fs.Bool("json", false, "print the webhook's JSON response body instead of a table")
	verbose := fs.Bool("verbose", false, "write the JSON outcome lines and debug logs to stderr")
	users, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := validateJob(users, *ticket, *reason); err != nil {
		return err
	}
	cfg, err := loadConfig(env, settings.Operator)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w)
	}

	level := slog.LevelWarn
	var outcomes io.Writer // the outcome lines the server writes to stdout; stdout is ours here
	if *verbose {
		level, outcomes = slog.LevelDebug, env.Stderr
	}
	logger := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: level}))

	cred, err := defaultCredential()
	if err != nil {
		return err
	}
	a, err := newApp(cfg, cred, outcomes, logger, false)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeBudget)
		defer cancel()
		if err := a.telemetry.Close(cctx); err != nil {
			logger.Warn("telemetry flush incomplete", "error", err)
		}
	}()

	// Sign in first: the audit names who signed in ("cli:<UPN or object ID>", read from the
	// token's claims, never the token), and a revocation fails fast with the credential's own
	// explanation (az login missing, wrong tenant…) instead of one "failed" row per user. A dry
	// run goes on without a token; only its lookups would need one.
	scope, err := graph.Scope(cfg.GraphBaseURL.String())
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, preflightBudget)
	who, err := graph.SignedIn(pctx, cred, scope)
	cancel()
	if err != nil && !*dryRun && !cfg.DryRun {
		return fmt.Errorf("sign-in failed, nothing was revoked (run 'handler check' for details): %w", err)
	}
	caller := "cli:unknown"
	if who.Name != "" {
		caller = "cli:" + who.Name
	}
	if *verbose {
		logger.Debug("signed in", "caller", caller)
	}

	job := revoke.Job{
		Meta: revoke.Meta{
			Trigger:   revoke.TriggerCLI,
			RequestID: uuid.NewString(),
			Caller:    caller,
		},
		Users: users, Ticket: *ticket, Reason: *reason, DryRun: *dryRun,
		Defer: revoke.DeferNever, Final: true,
		// An operator's long list drains at MAX_REVOCATIONS_PER_MINUTE, as a queue does, rather
		// than failing at the guard; what still cannot pass in a chunk's time is reported
		// throttled (rate_limited), never silently skipped.
		WaitForRate: true, LastDelivery: true,
	}
	var progress func(done, total int)
	if !*asJSON && isTerminal(env.Stderr) {
		progress = progressPrinter(env.Stderr, *verbose)
	}
	res, err := runInChunks(ctx, a.engine, job, cfg.GraphConcurrency, progress)
	if err != nil {
		return err
	}

	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	} else if err := printTable(env.Stdout, res); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	for _, r := range res.Results {
		if !r.Status.Succeeded() {
			return &exitError{code: ExitFailure}
		}
	}
	return nil
}

// parseInterspersed parses flags placed before, between or after the users, as operators type
// `handler revoke alice@contoso.com --dry-run`; the flag package alone stops at the first user.
// Everything after "--" is a user.
func parseInterspersed(fs *command, args []string) ([]string, error) {
	var users []string
	for {
		if err := fs.parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(users, rest...), nil
		}
		if len(rest) == 0 {
			return users, nil
		}
		users, args = append(users, rest[0]), rest[1:]
	}
}

// validateJob applies the webhook's request rules (request contract) to the command line, before anything
// is loaded or called: an invalid user is a usage error. Unlike a request, a command line may
// name more than 100 users; the rate guard still applies.
func validateJob(users []string, ticket, reason string) error {
	if len(users) == 0 {
		return usagef("revoke: name at least one user (a UPN or an object ID)")
	}
	seen := make(map[string]int, len(users))
	for i, u := range users {
		if !request.IsUPN(u) && !request.IsObjectID(u) {
			return usagef("revoke: %q is not a user principal name (user@domain) or an object ID (GUID)", u)
		}
		k := strings.ToLower(u)
		if j, dup := seen[k]; dup {
			return usagef("revoke: %q is named twice (arguments %d and %d)", u, j+1, i+1)
		}
		seen[k] = i
	}
	// The users are valid already; validating one of them with the flags reuses the request's
	// rules for ticket and reason.
	err := request.NewValidator().Validate(request.Body{UPN: users[0], Ticket: ticket, Reason: reason})
	var re *request.Error
	if errors.As(err, &re) {
		msgs := make([]string, 0, len(re.Details))
		for _, d := range re.Details {
			msgs = append(msgs, "--"+d.Field+" "+d.Message)
		}
		if len(msgs) == 0 {
			msgs = append(msgs, re.Message)
		}
		return usagef("revoke: %s", strings.Join(msgs, "; "))
	}
	if err != nil {
		return usagef("revoke: %v", err)
	}
	return nil
}

// defaultCredential is azidentity's DefaultAzureCredential: environment credentials, workload
// identity, managed identity (IDENTITY_ENDPOINT on App Service, IMDS on VMs), then the developer
// sign-ins az login, azd and Azure PowerShell. AZURE_TOKEN_CREDENTIALS narrows the chain. It reads
// the process environment itself, not Env.Getenv.
func defaultCredential() (azcore.TokenCredential, error) {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("default azure credential: %w", err)
	}
	return cred, nil
}

// jobRunner runs revocation jobs; *revoke.Engine is one.
type jobRunner interface {
	Run(ctx context.Context, job revoke.Job) (revoke.Result, error)
}

var _ jobRunner = (*revoke.Engine)(nil)

// runInChunks runs job in chunks of size users: the engine reports nothing until a job is done,
// and chunks let a long run show progress, give each part its own deadline, and stop between
// parts on Ctrl-C. Users not attempted because of an interruption are reported failed.
func runInChunks(ctx context.Context, engine jobRunner, job revoke.Job, size int, progress func(done, total int)) (revoke.Result, error) {
	size = max(size, 1)
	total := len(job.Users)
	res := revoke.Result{ID: job.RequestID, DryRun: job.DryRun, Results: make([]revoke.UserResult, 0, total)}
	for start := 0; start < total; start += size {
		end := min(start+size, total)
		if ctx.Err() != nil {
			for _, u := range job.Users[start:] {
				res.Results = append(res.Results, revoke.UserResult{UPN: u, Status: revoke.StatusFailed,
					Error: &revoke.ErrorInfo{Code: "interrupted", Message: "not attempted: the command was interrupted"}})
			}
			break
		}
		part := job
		part.Users = job.Users[start:end]
		cctx, cancel := context.WithTimeout(ctx, chunkBudget)
		r, err := engine.Run(cctx, part)
		cancel()
		if err != nil {
			return revoke.Result{}, fmt.Errorf("revoke users %d-%d: %w", start+1, end, err)
		}
		res.DryRun = r.DryRun
		res.Results = append(res.Results, r.Results...)
		if progress != nil && total > size {
			progress(end, total)
		}
	}
	res.Status = revoke.Overall(res.Results)
	return res, nil
}

// isTerminal reports whether w is a terminal (a character device), where progress is welcome.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressPrinter returns a counter that rewrites one line; with verbose, whose log lines would
// land in the middle of it, it prints a line per update instead.
func progressPrinter(w io.Writer, verbose bool) func(done, total int) {
	return func(done, total int) {
		switch {
		case verbose:
			fmt.Fprintf(w, "%d/%d done\n", done, total)
		case done == total:
			fmt.Fprintf(w, "\r%d/%d done\n", done, total)
		default:
			fmt.Fprintf(w, "\r%d/%d done", done, total)
		}
	}
}

// printTable writes the results as USER, STATUS, DETAIL columns and a summary line.
func printTable(w io.Writer, res revoke.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tSTATUS\tDETAIL")
	counts := map[revoke.Status]int{}
	var order []revoke.Status
	for _, r := range res.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", clean(r.UPN), r.Status, clean(detail(r)))
		if counts[r.Status] == 0 {
			order = append(order, r.Status)
		}
		counts[r.Status]++
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	parts := make([]string, 0, len(order))
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	dry := ""
	if res.DryRun {
		dry = "; dry run, nothing was revoked"
	}
	_, err := fmt.Fprintf(w, "\n%d user(s): %s (request %s%s)\n", len(res.Results), strings.Join(parts, ", "), res.ID, dry)
	return err
}

// detail is the DETAIL column: Graph's (or the guard rail's) error, a warning, the verification.
func detail(r revoke.UserResult) string {
	var parts []string
	if r.Error != nil {
		switch {
		case r.Error.Code != "" && r.Error.Message != "":
			parts = append(parts, r.Error.Code+": "+r.Error.Message)
		case r.Error.Code != "":
			parts = append(parts, r.Error.Code)
		default:
			parts = append(parts, r.Error.Message)
		}
	}
	if r.Warning != "" {
		parts = append(parts, r.Warning)
	}
	if r.Verified != nil {
		if *r.Verified {
			parts = append(parts, "verified")
		} else {
			parts = append(parts, "not verified")
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// clean makes text from Graph safe for a terminal table: nothing but printable characters (no
// escape sequences, tabs that would shift columns, newlines that would forge rows, or bidi
// overrides that would reorder them).
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
}

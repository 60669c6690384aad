package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/request"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/state"
	"github.com/entra-revoke/entra-revoke/internal/watch"
)

// ExitSignedInAgain is `handler watch`'s exit code when some user signed in again after the
// revocation: scripts can tell "someone is back in" from "not everything is clean".
const ExitSignedInAgain = 3

// watchBudget bounds one user's check from a terminal: the lookup and up to four pages of
// sign-ins, each waiting its turn within Graph's reports limit.
const watchBudget = 2 * time.Minute

const watchAbout = `Checks each user's sign-ins now, as the sign-in watch does after a revocation
(docs/sign-in-watch.md), signed in with DefaultAzureCredential (az login, ...), which needs
AuditLog.Read.All and User.Read.All and a tenant with Entra ID P1/P2. --since-revocation (the
default) reads the sign-ins since the user's signInSessionsValidFromDateTime (the last
revocation); --since TIME (RFC 3339) since then. Exit 3 when any user signed in again, else 1
when any is not clean, else 0; 2 on usage errors.

settings that drive it (docs/settings.md):
  GRAPH_BASE_URL, AZURE_CLIENT_ID
`

// watchLine is one user's check as `handler watch --json` prints it.
type watchLine struct {
	UPN    string `json:"upn"`
	UserID string `json:"userId,omitempty"`
	Since  string `json:"since,omitempty"`
	watch.Result
}

// watchCmd runs one sign-in check per user now.
func watchCmd(ctx context.Context, env Env, args []string) error {
	fs := newCommand(env, "watch", "watch [--since TIME | --since-revocation] [--json] UPN|objectID...", watchAbout)
	sinceFlag := fs.String("since", "", "read sign-ins since this RFC 3339 time instead of the last revocation")
	sinceRevocation := fs.Bool("since-revocation", false, "read sign-ins since the user's last revocation (the default)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	users, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return usagef("watch needs at least one UPN or object ID")
	}
	for _, u := range users {
		if !request.IsUPN(u) && !request.IsObjectID(u) {
			return usagef("%q is neither a UPN nor an object ID", u)
		}
	}
	var since time.Time
	if *sinceFlag != "" {
		if *sinceRevocation {
			return usagef("give --since or --since-revocation, not both")
		}
		if since, err = time.Parse(time.RFC3339, *sinceFlag); err != nil {
			return usagef("--since %q is not an RFC 3339 time such as 2026-12-05T08:00:00Z", *sinceFlag)
		}
	}
	cfg, err := loadConfig(env, settings.Operator)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w)
	}
	logger := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cred, err := defaultCredential()
	if err != nil {
		return err
	}
	a, err := newApp(cfg, cred, nil, logger, false)
	if err != nil {
		return err
	}
	reader := a.graph.SignInsReader(state.NewReports(nil))

	var out []watchLine
	for _, u := range users {
		out = append(out, checkNow(ctx, a.graph, reader, u, since))
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		for _, l := range out {
			if err := enc.Encode(l); err != nil {
				return fmt.Errorf("write results: %w", err)
			}
		}
	} else if err := printWatch(env.Stdout, out); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	code := ExitOK
	for _, l := range out {
		switch {
		case l.Finding == watch.SignedInAgain:
			code = ExitSignedInAgain
		case l.Finding != watch.Clean && code == ExitOK:
			code = ExitFailure
		}
	}
	if code != ExitOK {
		return &exitError{code: code}
	}
	return nil
}

// checkNow makes one user's check: the user's object ID (and last revocation) from Graph, then
// the sign-ins since.
func checkNow(ctx context.Context, users *graph.Client, reader watch.Reader, user string, since time.Time) watchLine {
	ctx, cancel := context.WithTimeout(ctx, watchBudget)
	defer cancel()
	line := watchLine{UPN: user}
	u, err := users.ReadSessions(ctx, user)
	if err != nil {
		line.Result = watch.UnavailableResult("", time.Now(), lookupReason(err))
		return line
	}
	line.UserID = u.ID
	if since.IsZero() {
		since = u.SessionsValidFrom
	}
	if since.IsZero() {
		// Never revoked: there is no "since the revocation" to check.
		line.Result = watch.UnavailableResult("", time.Now(), watch.ReasonFailed)
		return line
	}
	line.Since = since.UTC().Format(time.RFC3339)
	after := time.Since(since).Round(time.Minute).String()
	signIns, err := reader.SignIns(ctx, u.ID, since)
	var re *watch.ReadError
	switch {
	case err == nil:
		line.Result = watch.Decide(after, time.Now(), signIns)
	case errors.As(err, &re) && re.Reason != "":
		line.Result = watch.UnavailableResult(after, time.Now(), re.Reason)
	default:
		line.Result = watch.UnavailableResult(after, time.Now(), watch.ReasonFailed)
	}
	return line
}

// lookupReason is the unavailable reason of a failed user read.
func lookupReason(err error) string {
	var ge *revoke.GraphError
	switch {
	case errors.As(err, &ge) && ge.Status == revoke.StatusNotFound:
		return watch.ReasonUserGone
	case errors.As(err, &ge) && ge.Status == revoke.StatusDenied:
		return watch.ReasonMissingPermission
	}
	return watch.ReasonFailed
}

// printWatch prints one row per user and the sign-ins behind a finding.
func printWatch(w io.Writer, lines []watchLine) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tFINDING\tSIGN-INS\tSINCE")
	for _, l := range lines {
		finding := string(l.Finding)
		if l.Reason != "" {
			finding += " (" + l.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", clean(l.UPN), finding, l.SignIns, orDash(l.Since))
		for _, s := range l.Latest {
			what := "refused " + fmt.Sprint(s.ErrorCode)
			if s.ErrorCode == 0 {
				what = "SIGNED IN"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.At, what, clean(strings.TrimSpace(s.App+" "+s.IP)), clean(s.Location))
		}
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

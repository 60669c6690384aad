package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/endpoint"
	"github.com/entra-revoke/entra-revoke/internal/retryafter"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
)

const statusAbout = `Reads the status link of a deferred request (the Location header or statusUrl of a 202 answer,
<base>/api/revoke/status/<handle>) and prints its outcome. The link answers 202 while a user is
still queued, then what the synchronous call would have answered. With --wait the command polls,
honouring Retry-After, until the outcome is final or --timeout passes. Exit 0 only when every user
is revoked or dry_run, 1 otherwise (still queued, failed, an unknown or expired link), 2 on usage
errors. The link is the request's only credential: keep it out of tickets others can read.
`

// Bounds of the status command's polling.
const (
	statusCallTimeout  = 30 * time.Second // one GET: the route answers from the state store at once
	statusDefaultWait  = 5 * time.Second  // between polls when the answer has no Retry-After
	statusMinWait      = time.Second      // a Retry-After of 0 does not make a busy loop
	statusMaxWait      = 5 * time.Minute  // a Retry-After larger than that is not honoured in full
	statusMaxBodyBytes = 4 << 20          // a 100-user result is well under 100 KiB
)

// statusCmd follows a status link to the request's outcome.
func statusCmd(ctx context.Context, env Env, args []string) error {
	c := newCommand(env, "status", "status [--wait] [--timeout D] [--json] URL", statusAbout)
	wait := c.Bool("wait", false, "poll until every user has a final outcome")
	timeout := c.Duration("timeout", 10*time.Minute, "with --wait, how long to poll before giving up")
	asJSON := c.Bool("json", false, "print the response body instead of a table")
	args, err := parseInterspersed(c, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("status takes one status URL")
	}
	if *timeout <= 0 {
		return usagef("status: --timeout must be positive")
	}
	u, err := url.Parse(args[0])
	if err == nil {
		err = endpoint.Check(u)
	}
	if err != nil {
		// Not the URL itself: its handle is a credential.
		return usagef("status: the URL %v", err)
	}

	client := &http.Client{
		Timeout: statusCallTimeout,
		// The link is a credential: it is never sent on to another address.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	deadline := time.Now().Add(*timeout)
	for {
		a, err := getStatus(ctx, client, u)
		if err != nil {
			return err
		}
		if a.code != http.StatusAccepted || !*wait {
			return printStatus(env, a, *asJSON, "still queued: run with --wait to follow it to the end")
		}
		pause := statusDefaultWait
		if d, ok := retryafter.Parse(a.retryAfter, time.Now(), statusMaxWait); ok {
			pause = max(d, statusMinWait)
		}
		if time.Now().Add(pause).After(deadline) {
			return printStatus(env, a, *asJSON, fmt.Sprintf("still queued after %s: run again to keep waiting", *timeout))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("status: interrupted while waiting: %w", ctx.Err())
		case <-time.After(pause):
		}
	}
}

// statusAnswer is one answer of the status route.
type statusAnswer struct {
	code       int
	retryAfter string
	body       []byte
}

func getStatus(ctx context.Context, client *http.Client, u *url.URL) (statusAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return statusAnswer{}, usagef("status: the URL is not usable")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the error names the URL, whose handle is a credential
		}
		return statusAnswer{}, fmt.Errorf("status: GET %s://%s/…: %w", u.Scheme, u.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, statusMaxBodyBytes+1))
	if err != nil {
		return statusAnswer{}, fmt.Errorf("status: read the answer: %w", err)
	}
	if len(body) > statusMaxBodyBytes {
		return statusAnswer{}, fmt.Errorf("status: the answer exceeds %d bytes", statusMaxBodyBytes)
	}
	return statusAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: body}, nil
}

// statusError is the route's error shape (404 not_found for an unknown, wrong or expired link).
type statusError struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// printStatus prints an answer, and queuedHint after a table that is not final yet, and decides
// the exit: nil only when every user is revoked or dry_run.
func printStatus(env Env, a statusAnswer, asJSON bool, queuedHint string) error {
	var res revoke.Result
	isResult := json.Unmarshal(a.body, &res) == nil && len(res.Results) > 0
	if asJSON {
		var out bytes.Buffer
		if json.Indent(&out, a.body, "", "  ") != nil {
			return fmt.Errorf("status: HTTP %d with a body that is not JSON", a.code)
		}
		fmt.Fprintln(env.Stdout, out.String())
	} else if isResult {
		if err := printTable(env.Stdout, res); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	if !isResult {
		var e statusError
		if json.Unmarshal(a.body, &e) == nil && e.Error != nil {
			if a.code == http.StatusNotFound {
				return fmt.Errorf("status: HTTP 404 %s: the link is unknown, wrong or expired (outcomes are kept for IDEMPOTENCY_TTL)", clean(e.Error.Code))
			}
			return fmt.Errorf("status: HTTP %d %s: %s", a.code, clean(e.Error.Code), clean(e.Error.Message))
		}
		return fmt.Errorf("status: HTTP %d without a result", a.code)
	}
	if a.code == http.StatusAccepted && !asJSON {
		fmt.Fprintln(env.Stdout, queuedHint)
	}
	for _, r := range res.Results {
		if !r.Status.Succeeded() {
			return &exitError{code: ExitFailure}
		}
	}
	return nil
}

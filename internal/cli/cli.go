// Package cli is the handler's command line: `serve` (the Functions custom handler, the default
// under the host), `revoke`, `sign`, `check`, `status`, `hash-upn` and `version`. It wires
// settings to the engine and its adapters.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and something did not succeed
	ExitUsage   = 2 // bad arguments or settings
)

// Env is the process environment, injected so that tests can run commands in-process.
type Env struct {
	Args    []string
	Getenv  func(string) string
	Environ []string // "NAME=value" entries, as os.Environ gives them; used to spot misspelt settings
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Version string // set by the linker; empty in `go build`
	Commit  string
	// AppRoot is the directory of the executable, where the host keeps host.json; empty reads none.
	AppRoot string
}

// usageError is a problem with arguments or settings: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// exitError carries a non-zero exit code without a message of its own (the command has already
// said what went wrong).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// commands are the handler's commands, in the order the usage lists them.
var commands = []struct{ name, summary string }{
	{"serve", "run the Azure Functions custom handler (what the host starts)"},
	{"revoke", "revoke users' sign-in sessions from a terminal"},
	{"sign", "print Standard Webhooks headers for a body read on stdin"},
	{"watch", "check revoked users' sign-ins now: did anyone get back in?"},
	{"check", "validate the settings and list the Graph permissions of this identity, changing nothing"},
	{"status", "show (or --wait for) the outcome of a deferred request from its status link"},
	{"hash-upn", "print a UPN's upnHash, to find its events in Application Insights"},
	{"version", "print version information"},
}

// usage is the command list.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: handler <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'handler <command> --help' for a command's flags and the settings it reads\n" +
		"(docs/settings.md lists every setting).\n")
	return b.String()
}

// introduction is what `handler` alone at a terminal prints: it was not started by the Functions
// host, so an operator is trying it out.
const introduction = `entra-revoke signs Microsoft Entra ID users out everywhere. This executable is both its Azure
Functions custom handler (started by the Functions host, which sets FUNCTIONS_CUSTOMHANDLER_PORT)
and its operator command line.

To try it locally, run "make run" in the repository: a dry-run server on http://localhost:8080
with a demo secret, and the command that sends it a signed request. Or run "handler serve" with
the settings of docs/settings.md, or "handler check" to test settings and Graph permissions.

`

// Run dispatches a command and returns the process exit code.
func Run(ctx context.Context, env Env) int {
	args := env.Args
	if len(args) == 0 && strings.TrimSpace(env.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")) == "" && isTerminalInput(env.Stdin) {
		// An operator typed `handler`: explain rather than fail on settings meant for a server.
		fmt.Fprint(env.Stdout, introduction+usage())
		return ExitOK
	}
	cmd := "serve"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isHelpFlag(args[0])) {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, env, args)
	case "revoke":
		err = revokeCmd(ctx, env, args)
	case "sign":
		err = sign(env, args)
	case "watch":
		err = watchCmd(ctx, env, args)
	case "check":
		err = check(ctx, env, args)
	case "status":
		err = statusCmd(ctx, env, args)
	case "hash-upn":
		err = hashUPN(env, args)
	case "version":
		err = printVersion(env, args)
	case "help", "-h", "-help", "--help", "--h":
		if len(args) == 1 && args[0] != "help" && slices.ContainsFunc(commands, func(c struct{ name, summary string }) bool { return c.name == args[0] }) {
			// `handler help serve` is `handler serve --help`.
			help := env
			help.Args = []string{args[0], "--help"}
			return Run(ctx, help)
		}
		fmt.Fprint(env.Stdout, usage())
		return ExitOK
	default:
		fmt.Fprintf(env.Stderr, "handler: unknown command %q\n\n%s", cmd, usage())
		return ExitUsage
	}
	return exitCode(env.Stderr, err)
}

func exitCode(stderr io.Writer, err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "handler: %s\n", ue.msg)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "handler: %s\n", err)
	return ExitFailure
}

// isTerminalInput reports whether r is an interactive terminal: a character device other than the
// null device (which services, containers and the host give as stdin).
func isTerminalInput(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// isHelpFlag reports whether a asks for help, as the flag package understands it.
func isHelpFlag(a string) bool {
	return a == "-h" || a == "-help" || a == "--help" || a == "--h"
}

// command is one command's flag set and help.
type command struct {
	*flag.FlagSet
	env      Env
	synopsis string // after "handler "
	about    string // what the command does and which settings drive it, after the flags
}

// newCommand returns a command whose flag set reports errors instead of exiting. Parse errors and
// their usage go to stderr; --help prints the help on stdout.
func newCommand(env Env, name, synopsis, about string) *command {
	c := &command{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: env, synopsis: synopsis, about: about}
	c.SetOutput(env.Stderr)
	c.Usage = func() { c.printHelp(c.Output()) }
	return c
}

// printHelp writes the synopsis, the flags as --flag (as the docs write them) and the about text.
func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: handler %s\n", c.synopsis)
	var flags strings.Builder
	c.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(&flags, "%s\n      %s", line, text)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(&flags, " (default %q)", f.DefValue)
		}
		flags.WriteString("\n")
	})
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nflags:\n%s", flags.String())
	}
	if c.about != "" {
		fmt.Fprintf(w, "\n%s", c.about)
	}
}

// parse parses args; --help prints the help on stdout (flag.ErrHelp: exit 0), and any other
// problem is a usage error (the flag package already printed it on stderr).
func (c *command) parse(args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelpFlag(a) {
			c.printHelp(c.env.Stdout)
			return flag.ErrHelp
		}
	}
	if err := c.Parse(args); err != nil {
		return &exitError{code: ExitUsage}
	}
	return nil
}

// buildInfo describes this binary.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

func readBuildInfo(env Env) buildInfo {
	b := buildInfo{Version: env.Version, Commit: env.Commit}
	if info, ok := debug.ReadBuildInfo(); ok {
		b.GoVersion = info.GoVersion
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && b.Commit == "" {
				b.Commit = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

func printVersion(env Env, args []string) error {
	c := newCommand(env, "version", "version", "")
	if err := c.parse(args); err != nil {
		return err
	}
	if c.NArg() > 0 {
		return usagef("version takes no arguments")
	}
	b := readBuildInfo(env)
	fmt.Fprintf(env.Stdout, "handler %s (commit %s, %s)\n", b.Version, b.Commit, b.GoVersion)
	return nil
}

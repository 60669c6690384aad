// Package cli is the handler's command line: `serve` (the Functions custom handler, the default),
// `revoke`, `sign`, `check` and `version`. It wires settings to the engine and its adapters.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
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

const usage = `usage: handler [command] [flags]

commands:
  serve     run the Azure Functions custom handler (default)
  revoke    revoke users' sign-in sessions from a terminal
  sign      print Standard Webhooks headers for a body read on stdin
  check     validate settings and get a Graph token, changing nothing
  version   print version information

Run 'handler <command> --help' for a command's flags.
`

// Run dispatches a command and returns the process exit code.
func Run(ctx context.Context, env Env) int {
	args := env.Args
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
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
	case "check":
		err = check(ctx, env, args)
	case "version":
		err = printVersion(env, args)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(env.Stderr, "handler: unknown command %q\n\n%s", cmd, usage)
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

// newFlags returns a flag set that writes its usage to stderr and reports errors instead of exiting.
func newFlags(env Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: handler %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; a parse error is a usage error (the flag package already printed it).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
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
	fs := newFlags(env, "version", "version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version takes no arguments")
	}
	b := readBuildInfo(env)
	fmt.Fprintf(env.Stdout, "handler %s (commit %s, %s)\n", b.Version, b.Commit, b.GoVersion)
	return nil
}

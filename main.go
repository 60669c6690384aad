// Command handler is the entra-revoke Azure Functions custom handler and its operator CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/entra-revoke/entra-revoke/internal/cli"
)

// Set by the linker (make build): -X main.version=… -X main.commit=…
var (
	version = ""
	commit  = ""
)

// appRoot is the directory of the executable: the host runs it from the app root, beside host.json.
func appRoot() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe)
}

func main() {
	// The Graph SDK (kiota) opens an OpenTelemetry span for every step of every call through the
	// global provider. entra-revoke exports no traces (Application Insights gets its own
	// telemetry), and otel's default global provider still allocates each span.
	otel.SetTracerProvider(noop.NewTracerProvider())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Env{
		Args: os.Args[1:], Getenv: os.Getenv, Environ: os.Environ(),
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Version: version, Commit: commit, AppRoot: appRoot(),
	})
	stop()
	os.Exit(code)
}

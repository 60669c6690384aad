package cli_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// handlerBin is the binary built once by TestMain from the repository root, as an operator would
// build it; the CLI tests run it rather than calling Run in-process, because
// DefaultAzureCredential reads the process environment and the real exit code is the contract.
var handlerBin string

// runTimeout bounds one run of the binary. Commands finish in well under a second against the
// fakes; the margin is for a machine busy compiling.
const runTimeout = 2 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "entra-revoke-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	handlerBin = filepath.Join(dir, "handler")
	root, err := testenv.FindRepoRoot()
	if err == nil {
		err = testenv.BuildHandler(root, handlerBin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// result is one finished run of the binary.
type result struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("handler %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// mustRun runs the binary with exactly env as its environment (nothing is inherited: never the
// developer's AZURE_* or az login) and stdin, and returns its exit code and output.
func mustRun(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	return mustRunBinary(t, handlerBin, env, stdin, args...)
}

// mustRunBinary is mustRun with the binary at bin.
func mustRunBinary(t *testing.T, bin string, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	return mustRunInput(t, bin, env, strings.NewReader(stdin), args...)
}

// mustRunInput is mustRunBinary with stdin read from r (an *os.File is handed over as it is).
func mustRunInput(t *testing.T, bin string, env map[string]string, stdin io.Reader, args ...string) result {
	t.Helper()
	return mustRunWith(t, testenv.Options{Bin: bin, Args: args, Env: envList(env), Stdin: stdin})
}

// mustRunWith runs o to the end (in a temporary working directory, with its output collected when
// o names no other place for it) through testenv's launcher, which kills what is left of it when
// the test ends.
func mustRunWith(t *testing.T, o testenv.Options) result {
	t.Helper()
	stdout, stderr := &testenv.Buffer{}, &testenv.Buffer{}
	if o.Stdout == nil {
		o.Stdout = stdout
	}
	if o.Stderr == nil {
		o.Stderr = stderr
	}
	o.Dir = t.TempDir()
	p := testenv.StartProcess(t, o)
	code, err := p.Wait(runTimeout)
	if err != nil {
		t.Fatalf("handler %s: %v\nstderr:\n%s", strings.Join(o.Args, " "), err, p.StderrTail())
	}
	return result{args: o.Args, code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// fakes is an identity endpoint and a Graph, and the environment that points the binary at them.
type fakes struct {
	identity *graphtest.Identity
	graph    *graphtest.Graph
	env      map[string]string
}

// mustFakes starts the App Service identity endpoint and Graph fakes. The environment reaches
// the identity through DefaultAzureCredential's managed identity credential, as on a Function
// App (IDENTITY_ENDPOINT/IDENTITY_HEADER); HOME is empty so that no developer sign-in is found.
func mustFakes(t *testing.T) *fakes {
	t.Helper()
	f := &fakes{identity: graphtest.NewIdentity(t), graph: graphtest.NewGraph(t)}
	f.env = map[string]string{
		"PATH":              "/usr/bin:/bin",
		"HOME":              t.TempDir(),
		"IDENTITY_ENDPOINT": f.identity.URL(),
		"IDENTITY_HEADER":   f.identity.Secret(),
		"GRAPH_BASE_URL":    f.graph.URL(),
	}
	return f
}

// with returns a copy of the fakes' environment with kv (name, value pairs) added.
func (f *fakes) with(kv ...string) map[string]string {
	env := make(map[string]string, len(f.env)+len(kv)/2)
	for k, v := range f.env {
		env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

// graphCalls returns the Graph requests as "METHOD path" strings, for failure messages.
func (f *fakes) graphCalls() []string {
	var calls []string
	for _, r := range f.graph.Requests() {
		calls = append(calls, r.Method+" "+r.RawPath)
	}
	return calls
}

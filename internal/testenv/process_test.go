package testenv_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// childVariable makes this test binary act as the child the launcher starts, so that the tests
// need nothing built: "serve" listens on FUNCTIONS_CUSTOMHANDLER_PORT and exits 0 on SIGTERM,
// "stubborn" ignores SIGTERM and starts a grandchild that does too, "fail" exits 3 at once.
const childVariable = "TESTENV_LAUNCHER_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childVariable) {
	case "":
		os.Exit(m.Run())
	case "serve":
		serveChild()
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		if os.Getenv("GRANDCHILD") == "" {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "GRANDCHILD=1")
			if err := cmd.Start(); err != nil {
				os.Exit(1)
			}
			fmt.Println("grandchild", cmd.Process.Pid)
		}
		time.Sleep(time.Minute)
		os.Exit(0)
	case "fail":
		fmt.Fprintln(os.Stderr, "bad setting FOO")
		os.Exit(3)
	case "echo": // stdin to stderr, and whether stderr is a regular file rather than a pipe
		in, _ := io.ReadAll(os.Stdin)
		fi, err := os.Stderr.Stat()
		fmt.Fprintf(os.Stderr, "%s regular=%v", in, err == nil && fi.Mode().IsRegular())
		os.Exit(0)
	}
}

func serveChild() {
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"))
	if err != nil {
		os.Exit(1)
	}
	fmt.Printf("HOME=%q LEAK=%q\n", os.Getenv("HOME"), os.Getenv("TESTENV_LEAK"))
	fmt.Fprintln(os.Stderr, "listening")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() { _ = http.Serve(ln, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()
	<-stop
	os.Exit(0)
}

func child(kind string, env ...string) testenv.Options {
	return testenv.Options{Bin: os.Args[0], Env: append(env, childVariable+"="+kind)}
}

func TestLauncherStartsListensAndStops(t *testing.T) {
	t.Setenv("TESTENV_LEAK", "from the parent") // must not reach the child
	var stdout, stderr testenv.Buffer
	o := child("serve", "HOME=/nowhere", "FUNCTIONS_CUSTOMHANDLER_PORT=1")
	o.Listen, o.Stdout, o.Stderr = true, &stdout, &stderr
	p := testenv.StartProcess(t, o)
	if p.Port == "1" || p.URL != "http://127.0.0.1:"+p.Port {
		t.Fatalf("Port %q, URL %q; want a free port in place of the one in Env", p.Port, p.URL)
	}
	took, err := p.WaitReady(30*time.Second, time.Millisecond)
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if took <= 0 || took > 30*time.Second {
		t.Errorf("WaitReady took %v; want the time since start", took)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop = %v; want a clean exit on SIGTERM", err)
	}
	if got, want := stdout.String(), "HOME=\"/nowhere\" LEAK=\"\"\n"; got != want {
		t.Errorf("child stdout = %q; want %q (Env is the whole environment)", got, want)
	}
	if got := stderr.String(); got != "listening\n" || p.StderrTail() != "listening" {
		t.Errorf("child stderr = %q, tail %q; want \"listening\" in both", got, p.StderrTail())
	}
}

func TestLauncherReportsAnEarlyExit(t *testing.T) {
	o := child("fail")
	o.Listen = true
	p := testenv.StartProcess(t, o)
	_, err := p.WaitReady(30*time.Second, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "bad setting FOO") {
		t.Errorf("WaitReady on a child that exits at start = %v; want an error with its stderr", err)
	}
	if code, err := p.Wait(10 * time.Second); code != 3 || err != nil {
		t.Errorf("Wait = %d, %v; want exit code 3", code, err)
	}
}

// Stdin reaches the child, and an *os.File stderr is the child's own (a terminal stays one).
func TestLauncherHandsOverStdinAndAFileStderr(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := child("echo")
	o.Stdin, o.Stderr = strings.NewReader("from stdin"), f
	if code, err := testenv.StartProcess(t, o).Wait(30 * time.Second); code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v; want 0", code, err)
	}
	if got, _ := os.ReadFile(f.Name()); string(got) != "from stdin regular=true" {
		t.Errorf("the child's stderr file holds %q; want %q", got, "from stdin regular=true")
	}
}

func TestLauncherKillsTheProcessGroup(t *testing.T) {
	pids := make(chan int, 1)
	o := child("stubborn")
	o.Stdout = testenv.NewLineFunc(func(line []byte) {
		if s, ok := strings.CutPrefix(string(line), "grandchild "); ok {
			pid, _ := strconv.Atoi(s)
			pids <- pid
		}
	})
	p := testenv.StartProcess(t, o)
	var grandchild int
	select {
	case grandchild = <-pids:
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not start its grandchild")
	}
	if err := p.Stop(200 * time.Millisecond); err == nil {
		t.Error("Stop of a child ignoring SIGTERM = nil; want an error saying it was killed")
	}
	// The grandchild was in the group: it is gone (or a zombie until init reaps it).
	deadline := time.Now().Add(10 * time.Second)
	for alive(grandchild) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still runs after Stop", grandchild)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return err != nil || i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

func TestLineFunc(t *testing.T) {
	t.Parallel()
	var got []string
	w := testenv.NewLineFunc(func(line []byte) { got = append(got, string(line)) })
	for _, chunk := range []string{"a", "b\nc", "\n", "\nd\ne", ""} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if want := []string{"ab", "c", "", "d"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines = %q; want %q (the unfinished \"e\" kept back)", got, want)
	}
}

func TestLaunchAzurite(t *testing.T) {
	t.Parallel()
	a, err := testenv.LaunchAzurite(testenv.Node(t), t.TempDir(), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Kill)
	client := &http.Client{Timeout: 5 * time.Second}
	endpoints := map[string]string{"queue": a.QueueEndpoint + "?comp=list", "table": a.TableEndpoint + "/Tables", "blob": a.BlobEndpoint + "?comp=list"}
	for svc, url := range endpoints {
		if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.Contains(url, "/devstoreaccount1") {
			t.Errorf("%s endpoint %q: want http://127.0.0.1:PORT/devstoreaccount1", svc, url)
		}
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		_ = resp.Body.Close()
		// Unsigned requests are refused, which shows it is Azurite's storage API that answers.
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s without credentials = %d; want 403", url, resp.StatusCode)
		}
	}
	for _, want := range []string{"QueueEndpoint=" + a.QueueEndpoint + ";", "TableEndpoint=" + a.TableEndpoint + ";", "AccountKey=" + testenv.AzuriteKey + ";"} {
		if !strings.Contains(a.ConnectionString(), want) {
			t.Errorf("ConnectionString() = %q; want %s in it", a.ConnectionString(), want)
		}
	}
	if err := a.Stop(10 * time.Second); err != nil {
		t.Logf("Stop: %v (Azurite may exit non-zero on SIGTERM)", err)
	}
	if resp, err := client.Get(endpoints["queue"]); err == nil {
		_ = resp.Body.Close()
		t.Errorf("GET %s after Stop = %d; want the connection refused", endpoints["queue"], resp.StatusCode)
	}
}

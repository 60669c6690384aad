package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// process is a child server (the handler, or this program in baseline mode) listening on
// 127.0.0.1:port.
type process struct {
	cmd    *exec.Cmd
	URL    string
	Stdout *lineCounter
	Stderr *tail
	done   chan struct{}
	err    error
}

// startProcess starts bin with exactly env (nothing of this program's environment leaks in).
func startProcess(bin string, args, env []string, port string) (*process, error) {
	p := &process{
		cmd:    exec.Command(bin, args...),
		URL:    "http://127.0.0.1:" + port,
		Stdout: &lineCounter{},
		Stderr: &tail{max: 8 << 10},
		done:   make(chan struct{}),
	}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// waitReady polls GET / until it answers 200, as the Functions host does, and returns how long
// that took from start. The poll interval is 250 µs: the measured cold start is at most that late.
func (p *process) waitReady(start time.Time, within time.Duration) (time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	deadline := start.Add(within)
	for {
		select {
		case <-p.done:
			return 0, fmt.Errorf("exited at start (%v): %s", p.err, p.Stderr)
		default:
		}
		resp, err := client.Get(p.URL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not ready after %s: %v", within, err)
		}
		time.Sleep(250 * time.Microsecond)
	}
}

// stop sends SIGTERM and waits for the exit, killing the process after within.
func (p *process) stop(within time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not exit within %s of SIGTERM", within)
	}
}

// memory reads VmRSS and VmHWM (peak RSS) of pid, in KiB.
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			hwm, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return rss, hwm, nil
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; Linux fixes it at 100.
const clockTick = 10 * time.Millisecond

// cpuTime is the user plus system CPU time pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/<pid>/stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/<pid>/stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// rssSampler records the largest VmRSS of pid while it runs.
type rssSampler struct {
	max  atomic.Int64
	stop context.CancelFunc
	done chan struct{}
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &rssSampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if rss, _, err := memory(pid); err == nil && rss > s.max.Load() {
				s.max.Store(rss)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the largest VmRSS seen, in KiB.
func (s *rssSampler) finish() int64 {
	s.stop()
	<-s.done
	return s.max.Load()
}

// loadAvg is the 1-minute load average, the best single figure of how busy the shared machine was.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// lineCounter counts the child's stdout lines that are revocation outcomes, and keeps nothing
// else: a load test writes hundreds of thousands of lines.
type lineCounter struct {
	mu      sync.Mutex
	partial []byte
	lines   int64
	revoked int64
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := p
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.partial = append(c.partial, data...)
			return len(p), nil
		}
		line := data[:i]
		if len(c.partial) > 0 {
			line = append(c.partial, line...)
			c.partial = c.partial[:0]
		}
		c.lines++
		if bytes.Contains(line, []byte(`"event":"SessionRevocation"`)) && bytes.Contains(line, []byte(`"status":"revoked"`)) {
			c.revoked++
		}
		data = data[i+1:]
	}
}

// Counts returns the lines written so far and how many were revoked outcomes.
func (c *lineCounter) Counts() (lines, revoked int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines, c.revoked
}

// tail keeps the last max bytes of the child's stderr, for error messages.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

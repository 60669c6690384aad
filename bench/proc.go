package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// process is a child server (the handler, this program in baseline mode, or Node.js) started by
// the shared launcher on a free port, with its revoked outcome lines counted: a load test writes
// hundreds of thousands of lines, so nothing else of stdout is kept.
type process struct {
	*testenv.Process
	revoked atomic.Int64
}

// readyWithin bounds a server's start; the margin is for a machine busy with other work.
const readyWithin = 15 * time.Second

// stopWithin is how long a server gets to exit after SIGTERM (the handler drains for up to 10 s).
const stopWithin = 12 * time.Second

// startChild starts bin with exactly env (nothing of this program's environment leaks in) and
// FUNCTIONS_CUSTOMHANDLER_PORT set to a free port, and returns at once.
func startChild(bin string, args, env []string) (*process, error) {
	p := &process{}
	stdout := testenv.NewLineFunc(func(line []byte) {
		if bytes.Contains(line, []byte(`"event":"SessionRevocation"`)) && bytes.Contains(line, []byte(`"status":"revoked"`)) {
			p.revoked.Add(1)
		}
	})
	var err error
	p.Process, err = testenv.Start(testenv.Options{Bin: bin, Args: args, Env: env, Listen: true, Stdout: stdout})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// stop ends a server started by this program, reporting an unclean exit.
func (p *process) stop() error { return p.Stop(stopWithin) }

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

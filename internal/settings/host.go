package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// hostJSONLimit bounds how much of host.json is read; the real file is about a kilobyte.
const hostJSONLimit = 1 << 20

// maxDequeueCount is the host's own maxDequeueCount, so that the handler knows a message's last
// delivery exactly as the host does: the app setting that overrides host.json, else host.json in
// the app root, else the host's default. The retired MAX_DEQUEUE_COUNT may still be set, but only
// to the same number: a different one would make the handler treat another delivery as the last.
func (p *parser) maxDequeueCount(appRoot string) int {
	n, source, ok := p.hostMaxDequeueCount(appRoot)
	if !ok {
		return 0
	}
	retired := p.str("MAX_DEQUEUE_COUNT")
	if retired == "" {
		return n
	}
	if old, err := strconv.Atoi(retired); err != nil || old != n {
		p.fail("MAX_DEQUEUE_COUNT", fmt.Sprintf("is retired and disagrees with the host, which delivers a message at most %d times (%s): remove it", n, source))
		return n
	}
	p.warn(fmt.Sprintf("MAX_DEQUEUE_COUNT is retired: the handler reads the host's maxDequeueCount (%d, %s); remove the setting", n, source))
	return n
}

// hostMaxDequeueCount returns the host's maxDequeueCount and where it comes from.
func (p *parser) hostMaxDequeueCount(appRoot string) (n int, source string, ok bool) {
	if v := p.str(EnvHostMaxDequeueCount); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			p.fail(EnvHostMaxDequeueCount, fmt.Sprintf("%q is not a whole number of at least 1", v))
			return 0, "", false
		}
		return n, "app setting " + EnvHostMaxDequeueCount, true
	}
	if appRoot == "" {
		return DefaultMaxDequeueCount, "the host's default", true
	}
	path := filepath.Join(appRoot, "host.json")
	n, found, err := readHostJSON(path)
	switch {
	case err != nil:
		p.fail("host.json", fmt.Sprintf("%s %v", path, err))
		return 0, "", false
	case found:
		return n, path, true
	}
	return DefaultMaxDequeueCount, "the host's default, " + path + " sets none", true
}

// readHostJSON reads extensions.queues.maxDequeueCount from a host.json. found is false when the
// file or the value is absent.
func readHostJSON(path string) (n int, found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var host struct {
		Extensions struct {
			Queues struct {
				MaxDequeueCount *json.Number `json:"maxDequeueCount"`
			} `json:"queues"`
		} `json:"extensions"`
	}
	b, err := io.ReadAll(io.LimitReader(f, hostJSONLimit+1))
	if err != nil {
		return 0, false, err
	}
	if len(b) > hostJSONLimit {
		return 0, false, errors.New("is larger than 1 MiB")
	}
	// encoding/json matches keys case-insensitively, as the host's configuration does.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&host); err != nil {
		return 0, false, errors.New("is not valid JSON (comments are not supported)")
	}
	raw := host.Extensions.Queues.MaxDequeueCount
	if raw == nil {
		return 0, false, nil
	}
	v, err := strconv.Atoi(raw.String())
	if err != nil || v < 1 {
		return 0, false, fmt.Errorf("extensions.queues.maxDequeueCount %s is not a whole number of at least 1", raw)
	}
	return v, true, nil
}

package telemetry

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

const testIKey = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

// fakeIngestion is testenv's ingestion endpoint with this package's strict reading of the wire
// format: every request must be POST /v2.1/track, uncompressed application/x-json-stream, and
// every envelope must match the schema exactly (parseEnvelope); it answers as scripted by respond
// (by default 200, all accepted).
type fakeIngestion struct {
	t       *testing.T
	in      *testenv.Ingestion
	respond func(call int, items []gotItem) fakeResponse // nil: 200, all accepted; set before sending
}

// fakeResponse is a scripted answer; errors are the 206 item errors.
type fakeResponse struct {
	status     int
	retryAfter string
	errors     []itemError
}

type itemError = testenv.ItemError

type gotRequest struct {
	at            time.Time
	authorization string
	body          []byte // decompressed
	items         []gotItem
}

// gotItem is one validated envelope.
type gotItem struct {
	Name     string // envelope name
	Time     time.Time
	Tags     map[string]string
	BaseType string
	Event    *gotEvent
	Dep      *gotDependency
}

type gotEvent struct {
	Ver          int                `json:"ver"`
	Name         string             `json:"name"`
	Properties   map[string]string  `json:"properties"`
	Measurements map[string]float64 `json:"measurements"`
}

type gotDependency struct {
	Ver        int               `json:"ver"`
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	ResultCode string            `json:"resultCode"`
	Duration   string            `json:"duration"`
	Success    bool              `json:"success"`
	Type       string            `json:"type"`
	Target     string            `json:"target"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties"`
}

func (it gotItem) prop(k string) string {
	if it.Event != nil {
		return it.Event.Properties[k]
	}
	if it.Dep != nil {
		return it.Dep.Properties[k]
	}
	return ""
}

// Properties and measurements each event may carry: testdata/telemetry/keys.json, the list the
// repository's KQL queries are checked against (infra/kql_test.go).
var (
	allowedProps, allowedMeasurements = mustLoadKeys("../../testdata/telemetry/keys.json")
	durationRE                        = regexp.MustCompile(`^\d+\.\d{2}:\d{2}:\d{2}\.\d{7}$`)
)

// mustLoadKeys reads the keys list: event name -> customDimensions keys, and -> customMeasurements
// keys. The dependencies' keys are under the name "dependencies".
func mustLoadKeys(path string) (props, meas map[string][]string) {
	var k struct {
		Events map[string]struct {
			CustomDimensions   []string `json:"customDimensions"`
			CustomMeasurements []string `json:"customMeasurements"`
		} `json:"events"`
		Dependencies struct {
			CustomDimensions []string `json:"customDimensions"`
		} `json:"dependencies"`
	}
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &k)
	}
	if err != nil || len(k.Events) == 0 {
		panic(fmt.Sprintf("%s: %v", path, err))
	}
	props, meas = map[string][]string{}, map[string][]string{}
	for name, e := range k.Events {
		props[name], meas[name] = e.CustomDimensions, e.CustomMeasurements
	}
	props["dependencies"] = k.Dependencies.CustomDimensions
	return props, meas
}

func newFakeIngestion(t *testing.T) *fakeIngestion {
	t.Helper()
	f := &fakeIngestion{t: t, in: testenv.NewIngestion(t)}
	f.in.Respond(func(call int, r testenv.IngestionRequest) testenv.IngestionReply {
		items := f.mustParse(r)
		if f.respond == nil {
			return testenv.IngestionReply{}
		}
		resp := f.respond(call, items)
		return testenv.IngestionReply{Status: resp.status, RetryAfter: resp.retryAfter, Errors: resp.errors}
	})
	return f
}

// connection is the connection string of the fake, parsed.
func (f *fakeIngestion) connection(aad bool) ConnectionString {
	f.t.Helper()
	s := "InstrumentationKey=" + testIKey + ";IngestionEndpoint=" + f.in.URL() + "/;LiveEndpoint=https://live.example/"
	if aad {
		s += ";Authorization=AAD"
	}
	c, err := ParseConnectionString(s)
	if err != nil {
		f.t.Fatalf("ParseConnectionString(%q) = %v", s, err)
	}
	return c
}

// mustParse checks a request strictly, reporting every deviation, and returns its valid items.
func (f *fakeIngestion) mustParse(r testenv.IngestionRequest) []gotItem {
	if r.Path != "/v2.1/track" {
		f.t.Errorf("ingestion got POST %s; want POST /v2.1/track", r.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-json-stream" {
		f.t.Errorf("Content-Type = %q; want application/x-json-stream", ct)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" {
		f.t.Errorf("Content-Encoding = %q; want none", ce)
	}
	return f.items(r.Envelopes, true)
}

// items reads envelopes strictly; report says whether to fail the test for an invalid one (once,
// when it arrives) or to leave it out silently (when read again).
func (f *fakeIngestion) items(envs []testenv.Envelope, report bool) []gotItem {
	var items []gotItem
	for i, e := range envs {
		it, err := parseEnvelope(e.Raw)
		if err != nil {
			if report {
				f.t.Errorf("envelope %d invalid: %v\n%s", i, err, e.Raw)
			}
			continue
		}
		items = append(items, it)
	}
	return items
}

// parseEnvelope validates one envelope strictly: exact key sets, types, names and formats.
func parseEnvelope(line []byte) (gotItem, error) {
	var it gotItem
	top, err := exactKeys(line, []string{"ver", "name", "time", "iKey", "tags", "data"}, nil)
	if err != nil {
		return it, fmt.Errorf("envelope: %w", err)
	}
	var ver int
	var ikey, tm string
	if err := decodeAll(top, map[string]any{"ver": &ver, "name": &it.Name, "iKey": &ikey, "time": &tm, "tags": &it.Tags}); err != nil {
		return it, err
	}
	if ver != 1 {
		return it, fmt.Errorf("ver = %d; want 1", ver)
	}
	if ikey != testIKey {
		return it, fmt.Errorf("iKey = %q; want %q", ikey, testIKey)
	}
	if !strings.HasSuffix(tm, "Z") {
		return it, fmt.Errorf("time %q is not UTC", tm)
	}
	if it.Time, err = time.Parse(time.RFC3339Nano, tm); err != nil {
		return it, fmt.Errorf("time %q: %v", tm, err)
	}
	for _, k := range []string{"ai.cloud.role", "ai.cloud.roleInstance", "ai.operation.id"} {
		if it.Tags[k] == "" {
			return it, fmt.Errorf("tag %s missing", k)
		}
	}
	for k := range it.Tags {
		if !slices.Contains([]string{"ai.cloud.role", "ai.cloud.roleInstance", "ai.operation.id",
			"ai.operation.parentId", "ai.internal.sdkVersion"}, k) {
			return it, fmt.Errorf("unexpected tag %q", k)
		}
	}
	data, err := exactKeys(top["data"], []string{"baseType", "baseData"}, nil)
	if err != nil {
		return it, fmt.Errorf("data: %w", err)
	}
	if err := json.Unmarshal(data["baseType"], &it.BaseType); err != nil {
		return it, fmt.Errorf("baseType: %v", err)
	}
	prefix := "Microsoft.ApplicationInsights." + strings.ReplaceAll(testIKey, "-", "") + "."
	switch it.BaseType {
	case "EventData":
		if it.Name != prefix+"Event" {
			return it, fmt.Errorf("name = %q; want %q", it.Name, prefix+"Event")
		}
		return it, parseEvent(data["baseData"], &it)
	case "RemoteDependencyData":
		if it.Name != prefix+"RemoteDependency" {
			return it, fmt.Errorf("name = %q; want %q", it.Name, prefix+"RemoteDependency")
		}
		return it, parseDependency(data["baseData"], &it)
	default:
		return it, fmt.Errorf("baseType = %q", it.BaseType)
	}
}

func parseEvent(raw json.RawMessage, it *gotItem) error {
	fields, err := exactKeys(raw, []string{"ver", "name"}, []string{"properties", "measurements"})
	if err != nil {
		return fmt.Errorf("EventData: %w", err)
	}
	ev := &gotEvent{}
	// Decoding into map[string]string fails on any non-string property value.
	if err := decodeAll(fields, map[string]any{"ver": &ev.Ver, "name": &ev.Name, "properties": &ev.Properties, "measurements": &ev.Measurements}); err != nil {
		return err
	}
	if ev.Ver != 2 {
		return fmt.Errorf("EventData ver = %d; want 2", ev.Ver)
	}
	props, ok := allowedProps[ev.Name]
	if !ok {
		return fmt.Errorf("unexpected event name %q", ev.Name)
	}
	for k, v := range ev.Properties {
		if !slices.Contains(props, k) {
			return fmt.Errorf("%s: unexpected property %q", ev.Name, k)
		}
		if v == "" {
			return fmt.Errorf("%s: empty property %q", ev.Name, k)
		}
	}
	for k := range ev.Measurements {
		if !slices.Contains(allowedMeasurements[ev.Name], k) {
			return fmt.Errorf("%s: unexpected measurement %q", ev.Name, k)
		}
	}
	it.Event = ev
	return nil
}

func parseDependency(raw json.RawMessage, it *gotItem) error {
	fields, err := exactKeys(raw, []string{"ver", "id", "name", "resultCode", "duration", "success", "type", "target", "data"}, []string{"properties"})
	if err != nil {
		return fmt.Errorf("RemoteDependencyData: %w", err)
	}
	d := &gotDependency{}
	if err := decodeAll(fields, map[string]any{"ver": &d.Ver, "id": &d.ID, "name": &d.Name, "resultCode": &d.ResultCode,
		"duration": &d.Duration, "success": &d.Success, "type": &d.Type, "target": &d.Target, "data": &d.Data, "properties": &d.Properties}); err != nil {
		return err
	}
	switch {
	case d.Ver != 2:
		return fmt.Errorf("dependency ver = %d; want 2", d.Ver)
	case d.Type != "Http":
		return fmt.Errorf("dependency type = %q; want Http", d.Type)
	case !durationRE.MatchString(d.Duration):
		return fmt.Errorf("dependency duration %q is not d.hh:mm:ss.fffffff", d.Duration)
	case d.ID == "" || d.Name == "" || d.Target == "" || d.ResultCode == "":
		return fmt.Errorf("dependency with empty id, name, target or resultCode: %+v", d)
	}
	for k, v := range d.Properties {
		if !slices.Contains(allowedProps["dependencies"], k) || v == "" {
			return fmt.Errorf("dependency property %q=%q unexpected", k, v)
		}
	}
	it.Dep = d
	return nil
}

// exactKeys decodes a JSON object and checks its keys: every required one, nothing unknown.
// Key case matters (encoding/json alone would accept "ikey" for "iKey").
func exactKeys(raw []byte, required, optional []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("missing %q", k)
		}
	}
	for k := range m {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			return nil, fmt.Errorf("unexpected key %q", k)
		}
	}
	return m, nil
}

func decodeAll(fields map[string]json.RawMessage, into map[string]any) error {
	for k, raw := range fields {
		dst, ok := into[k]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("%s: %v", k, err)
		}
	}
	return nil
}

func (f *fakeIngestion) snapshot() (reqs []gotRequest, accepted []gotItem) {
	for _, r := range f.in.Requests() {
		reqs = append(reqs, gotRequest{at: r.At, authorization: r.Header.Get("Authorization"), body: r.Body, items: f.items(r.Envelopes, false)})
	}
	return reqs, f.items(f.in.Accepted(), false)
}

// mustWaitAccepted waits until cond holds for the accepted items. The bound only keeps a broken
// sender from hanging the test; it is not a latency assertion.
func (f *fakeIngestion) mustWaitAccepted(cond func([]gotItem) bool) []gotItem {
	f.t.Helper()
	acc := f.in.WaitAccepted(f.t, 20*time.Second, "expected items", func(e []testenv.Envelope) bool { return cond(f.items(e, false)) })
	return f.items(acc, false)
}

// requestIDs lists the requestId property of accepted SessionRevocation events, in order.
func requestIDs(items []gotItem) []string {
	var ids []string
	for _, it := range items {
		if it.Event != nil && it.Event.Name == eventRevocation {
			ids = append(ids, it.prop("requestId"))
		}
	}
	return ids
}

// newBlackhole is an endpoint that accepts connections and never answers: an unreachable
// ingestion endpoint as a client sees it behind a firewall that drops packets.
func newBlackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

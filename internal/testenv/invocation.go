package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// The Functions host's invocations of a custom handler, encoded as the host really sends them
// (testdata/host holds captured examples, and the test of this file checks that the encoder
// reproduces them): Data.message is the queue message's text JSON-encoded twice, because the
// host serialises each input before it serialises the whole invocation; DequeueCount is a string;
// Id and PopReceipt carry embedded quotes; and a JSON message's top-level primitive properties are
// copied into Metadata, encoded the same way.

// hostTime and hostNow are how the host writes a queue message's times and sys.UtcNow.
const (
	hostTime = "2006-01-02T15:04:05+00:00"
	hostNow  = "2006-01-02T15:04:05.0000000Z"
)

// QueueDelivery is one delivery of a queue message to a queue-triggered function.
type QueueDelivery struct {
	Function     string // the function's name (sys.MethodName), for example revoke-queue
	Text         []byte // the message text as the function sees it (the queue's base64 undone)
	ID           string // the queue's message id
	DequeueCount int    // 1 on the first delivery
	PopReceipt   string // "" for a fixed one
	Inserted     time.Time
	Now          time.Time // the host's clock at the invocation; zero for time.Now()
	RandGUID     string    // sys.RandGuid; "" for a random one
}

// QueueInvocation is the body of POST /<function> for the delivery of the message text with id,
// at its dequeueCount-th delivery, now.
func QueueInvocation(function string, text []byte, id string, dequeueCount int) []byte {
	return QueueDelivery{Function: function, Text: text, ID: id, DequeueCount: dequeueCount}.Invocation()
}

// Invocation encodes the delivery as the host's invocation body.
func (d QueueDelivery) Invocation() []byte {
	now := d.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	inserted := d.Inserted
	if inserted.IsZero() {
		inserted = now.Add(-time.Second)
	}
	inserted = inserted.UTC()
	receipt := d.PopReceipt
	if receipt == "" {
		receipt = "AgAAAAMAAAAAAAAA"
	}
	meta := map[string]any{}
	// The host's binding data from a JSON object message: each primitive property's JSON text.
	var props map[string]json.RawMessage
	if json.Unmarshal(d.Text, &props) == nil {
		for k, v := range props {
			if c := v[0]; c != '{' && c != '[' && c != 'n' {
				var compact bytes.Buffer
				_ = json.Compact(&compact, v)
				meta[k] = compact.String()
			}
		}
	}
	for k, v := range map[string]any{
		"DequeueCount":    fmt.Sprint(d.DequeueCount),
		"ExpirationTime":  inserted.Add(7 * 24 * time.Hour).Format(hostTime),
		"Id":              quoted(d.ID),
		"InsertionTime":   inserted.Format(hostTime),
		"NextVisibleTime": now.Add(10 * time.Minute).Format(hostTime),
		"PopReceipt":      quoted(receipt),
		"sys":             sys(d.Function, now, d.RandGUID),
	} {
		meta[k] = v
	}
	return mustMarshal(map[string]any{
		"Data":     map[string]any{"message": quoted(string(d.Text))},
		"Metadata": meta,
	})
}

// TimerInvocation is the body of POST /<function> for a timer trigger firing at now, on a daily
// schedule that last ran a day earlier.
func TimerInvocation(function string, now time.Time) []byte {
	now = now.UTC()
	last := now.Truncate(time.Second).Add(-24 * time.Hour)
	return mustMarshal(map[string]any{
		"Data": map[string]any{"timer": map[string]any{
			"Schedule": map[string]any{"AdjustForDST": true},
			"ScheduleStatus": map[string]any{
				"Last":        last.Format(hostTime),
				"Next":        last.Add(24 * time.Hour).Format(hostTime),
				"LastUpdated": last.Format("2006-01-02T15:04:05.0000000+00:00"),
			},
			"IsPastDue": false,
		}},
		"Metadata": map[string]any{"sys": sys(function, now, "")},
	})
}

func sys(function string, now time.Time, guid string) map[string]any {
	if guid == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		guid = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	}
	return map[string]any{"MethodName": function, "UtcNow": now.Format(hostNow), "RandGuid": guid}
}

// quoted is s JSON-encoded: the host's second encoding, which the outer json.Marshal wraps again.
func quoted(s string) string { return string(mustMarshal(s)) }

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and maps of them: cannot fail
	}
	return b
}

package queue_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/revoke"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// TestAzurite runs everything that needs a real queue service against one Azurite instance, which
// its subtests share (each on queues of its own).
func TestAzurite(t *testing.T) {
	t.Parallel()
	a := testenv.StartAzurite(t)

	t.Run("enqueue", func(t *testing.T) {
		t.Parallel()
		// Lower-case keys: the host accepts them, and so must we, all the way to a real service.
		conn := strings.NewReplacer("AccountName=", "accountname=", "AccountKey=", "accountkey=",
			"QueueEndpoint=", "queueendpoint=").Replace(a.ConnectionString)
		c := mustClient(t, conn, "enqueue")
		// No EnsureQueues: Enqueue creates a missing queue rather than lose the message.
		sealed, err := queue.Seal(mustKeys(t, fixtureSecret), "msg_enqueue", time.Now(), []byte(`{"upn":"alice@contoso.com"}`))
		if err != nil {
			t.Fatal(err)
		}
		ctx := mustContext(t)
		if err := c.Enqueue(ctx, sealed); err != nil {
			t.Fatalf("Enqueue = %v", err)
		}
		raw, text := mustOnlyMessage(t, a, "enqueue")
		if raw != base64.StdEncoding.EncodeToString(sealed) {
			t.Errorf("stored message %q; want the sealed text base64-encoded", raw)
		}
		env, signed, err := queue.ParseMessage(text)
		if err != nil || !signed {
			t.Fatalf("ParseMessage(%s) = signed %v, %v; want signed", text, signed, err)
		}
		if err := testenv.NodeVerify(t, fixtureSecret, env.Header(), []byte(env.Body)); err != nil {
			t.Errorf("standardwebhooks rejects the enqueued message %s: %v", text, err)
		}
		mustBeEmpty(t, a, "enqueue"+queue.PoisonSuffix)
	})

	t.Run("poison", func(t *testing.T) {
		t.Parallel()
		c := mustClient(t, a.ConnectionString, "poison")
		if err := c.EnsureQueues(mustContext(t)); err != nil {
			t.Fatal(err)
		}
		inv := struct{ Message []byte }{mustFixtureMessage(t, "queue-bad-signature.json")}
		texts := [][]byte{
			[]byte("revoke alice@contoso.com please"),
			inv.Message,
			{0x00, 0xff, '\n', ' ', '"', 0xc3}, // not text at all: still copied byte for byte
		}
		for _, text := range texts {
			if err := c.Poison(mustContext(t), text); err != nil {
				t.Fatalf("Poison(%q) = %v", text, err)
			}
			msg, got := mustOnlyMessage(t, a, "poison"+queue.PoisonSuffix)
			if !bytes.Equal(got, text) || msg != base64.StdEncoding.EncodeToString(text) {
				t.Errorf("Poison(%q) stored %q (%q); want it unchanged, base64-encoded", text, msg, got)
			}
			mustClear(t, a, "poison"+queue.PoisonSuffix)
		}
		mustBeEmpty(t, a, "poison")
	})

	t.Run("poison keeps messages", func(t *testing.T) {
		t.Parallel()
		c := mustClient(t, a.ConnectionString, "poison-ttl")
		if err := c.Poison(mustContext(t), []byte("x")); err != nil {
			t.Fatal(err)
		}
		resp, err := mustQueue(t, a, "poison-ttl"+queue.PoisonSuffix).PeekMessages(mustContext(t), nil)
		if err != nil || len(resp.Messages) != 1 {
			t.Fatalf("PeekMessages = %d messages, %v; want 1", len(resp.Messages), err)
		}
		// A message that never expires has the service's maximum expiry, far past the 7-day default.
		if exp := *resp.Messages[0].ExpirationTime; exp.Before(time.Now().AddDate(1, 0, 0)) {
			t.Errorf("poison message expires %v; want never", exp)
		}
	})

	t.Run("ensure queues", func(t *testing.T) {
		t.Parallel()
		ctx := mustContext(t)
		// The poison queue exists already with metadata of its own: Create answers 409 for it.
		md := "kept"
		if _, err := mustQueue(t, a, "ensure"+queue.PoisonSuffix).Create(ctx, &azqueue.CreateOptions{Metadata: map[string]*string{"owner": &md}}); err != nil {
			t.Fatal(err)
		}
		c := mustClient(t, a.ConnectionString, "ensure")
		for i := range 2 {
			if err := c.EnsureQueues(ctx); err != nil {
				t.Fatalf("EnsureQueues #%d = %v; want nil", i+1, err)
			}
		}
		for _, name := range []string{"ensure", "ensure" + queue.PoisonSuffix} {
			if _, err := mustQueue(t, a, name).GetProperties(ctx, nil); err != nil {
				t.Errorf("queue %s after EnsureQueues: %v", name, err)
			}
		}
	})

	t.Run("largest message", func(t *testing.T) {
		t.Parallel()
		// The service's own limit decides whether MaxMessageBytes is right: the largest text we
		// allow must be accepted.
		c := mustClient(t, a.ConnectionString, "largest")
		text := bytes.Repeat([]byte("a"), queue.MaxMessageBytes)
		if err := c.Enqueue(mustContext(t), text); err != nil {
			t.Fatalf("Enqueue(%d bytes) = %v; want nil", len(text), err)
		}
		if _, got := mustOnlyMessage(t, a, "largest"); !bytes.Equal(got, text) {
			t.Errorf("stored %d bytes; want the %d enqueued", len(got), len(text))
		}
		// And the limit is tight: three bytes more (four base64 characters) the service refuses.
		over := base64.StdEncoding.EncodeToString(append(text, "aaa"...))
		if _, err := mustQueue(t, a, "largest").EnqueueMessage(mustContext(t), over, nil); err == nil {
			t.Errorf("Azurite accepts a %d-character message; want MaxMessageBytes raised to match", len(over))
		}
	})

	t.Run("deferrer", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name       string
			deferral   revoke.Deferral
			wantOrigin queue.Origin // RequestID "" means a new msg_ id
			wantUPN    string
			wantUPNs   []string
		}{
			{
				name: "one user keeps its request, caller and status",
				deferral: revoke.Deferral{Meta: revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "CHG0042", Caller: "entra:5f3c1d2e-0000-4000-8000-000000000001", StatusHandle: "c3RhdHVzLWhhbmRsZS0xMjM0NTY3ODkw"},
					Users: []string{"alice@contoso.com"}, Ticket: "INC0012345", Reason: "Lost phone", RequestedBy: "analyst@contoso.com", DryRun: true},
				wantOrigin: queue.Origin{RequestID: "CHG0042", Caller: "entra:5f3c1d2e-0000-4000-8000-000000000001", StatusHandle: "c3RhdHVzLWhhbmRsZS0xMjM0NTY3ODkw"},
				wantUPN:    "alice@contoso.com",
			},
			{
				name: "several users",
				deferral: revoke.Deferral{Meta: revoke.Meta{Trigger: revoke.TriggerHTTP, RequestID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", Caller: "webhook:1"},
					Users:  []string{"alice@contoso.com", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"},
					Ticket: "SIR-42", Reason: "Sentinel <incident> & more"},
				wantOrigin: queue.Origin{RequestID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", Caller: "webhook:1"},
				wantUPNs:   []string{"alice@contoso.com", "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com", "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"},
			},
			{
				name: "a request id the origin cannot carry is replaced",
				deferral: revoke.Deferral{Meta: revoke.Meta{RequestID: "key with spaces", Caller: "webhook:0"},
					Users: []string{"bob@contoso.com"}},
				wantOrigin: queue.Origin{Caller: "webhook:0"},
				wantUPN:    "bob@contoso.com",
			},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				name := "deferrer-" + string(rune('a'+i))
				now := time.Now().Truncate(time.Second)
				keys := mustKeys(t, fixtureSecret, "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=")
				d := &queue.Deferrer{Client: mustClient(t, a.ConnectionString, name), Keys: keys, Now: func() time.Time { return now }}
				if err := d.Defer(mustContext(t), tt.deferral); err != nil {
					t.Fatalf("Defer(%+v) = %v", tt.deferral, err)
				}
				_, text := mustOnlyMessage(t, a, name)
				env, signed, err := queue.ParseMessage(text)
				if err != nil || !signed {
					t.Fatalf("deferred message %s: signed %v, %v; want a signed envelope", text, signed, err)
				}
				s, err := keys.Verify(env.Header(), []byte(env.Body), now, maxAge, future)
				if err != nil || s.KeyIndex != 0 || !s.Timestamp.Equal(now) {
					t.Fatalf("Verify(deferred %s) = %+v, %v; want signed by the first secret at %v", text, s, err, now)
				}
				if err := testenv.NodeVerify(t, fixtureSecret, env.Header(), []byte(env.Body)); err != nil {
					t.Errorf("standardwebhooks rejects the deferred message %s: %v", text, err)
				}
				if !strings.HasPrefix(env.ID, "msg_") || len(env.ID) < 20 {
					t.Errorf("webhook-id = %q; want a new msg_ id for the message", env.ID)
				}
				body, origin, err := queue.SplitBody([]byte(env.Body))
				if err != nil || origin == nil {
					t.Fatalf("SplitBody(%s) = %v, %v; want the origin", env.Body, origin, err)
				}
				want := tt.wantOrigin
				if want.RequestID == "" {
					if !strings.HasPrefix(origin.RequestID, "msg_") {
						t.Errorf("origin request id = %q; want a new msg_ id", origin.RequestID)
					}
					want.RequestID = origin.RequestID
				}
				if *origin != want {
					t.Errorf("origin = %+v; want %+v", *origin, want)
				}
				req := mustRequest(t, body)
				def := tt.deferral
				if req.UPN != tt.wantUPN || !slices.Equal(req.UPNs, tt.wantUPNs) || req.Ticket != def.Ticket ||
					req.Reason != def.Reason || req.RequestedBy != def.RequestedBy || req.DryRun != def.DryRun {
					t.Errorf("deferred request %s = %+v; want upn %q, upns %q and the deferral's ticket, reason, requestedBy, dryRun (%+v)",
						env.Body, req, tt.wantUPN, tt.wantUPNs, def)
				}
			})
		}
	})
}

func TestDeferrerRefuses(t *testing.T) {
	t.Parallel()
	// Nothing listens at the development endpoint in tests; each case fails before any request.
	c, err := queue.New(devStorage("revoke-requests"))
	if err != nil {
		t.Fatal(err)
	}
	keys := mustKeys(t, fixtureSecret)
	tooMany := make([]string, 101)
	for i := range tooMany {
		tooMany[i] = "user" + string(rune('a'+i%26)) + "@contoso.com"
	}
	tests := []struct {
		name string
		d    *queue.Deferrer
		def  revoke.Deferral
	}{
		{"no users", &queue.Deferrer{Client: c, Keys: keys}, revoke.Deferral{}},
		{"more than a request holds", &queue.Deferrer{Client: c, Keys: keys}, revoke.Deferral{Users: tooMany}},
		{"no client", &queue.Deferrer{Keys: keys}, revoke.Deferral{Users: []string{"a@contoso.com"}}},
		{"no secret to sign with", &queue.Deferrer{Client: c}, revoke.Deferral{Meta: revoke.Meta{Caller: "webhook:0"}, Users: []string{"a@contoso.com"}}},
		{"no caller to name", &queue.Deferrer{Client: c, Keys: keys}, revoke.Deferral{Meta: revoke.Meta{RequestID: "r1"}, Users: []string{"a@contoso.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := tt.d.Defer(ctx, tt.def); err == nil {
				t.Errorf("Defer(%d users) = nil; want an error", len(tt.def.Users))
			}
		})
	}
}

func TestNewMessageID(t *testing.T) {
	t.Parallel()
	a, b := queue.NewMessageID(), queue.NewMessageID()
	if a == b || !strings.HasPrefix(a, "msg_") || len(a) < 20 || len(a) > 256 {
		t.Errorf("NewMessageID() = %q, %q; want distinct msg_ ids webhook-id can carry", a, b)
	}
}

func mustContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustClient builds a Client the way the handler does: the settings parse the connection string,
// the client takes the account they name.
func mustClient(t *testing.T, conn, name string) *queue.Client {
	t.Helper()
	st, err := settings.ParseStorageConnectionString(conn)
	if err != nil {
		t.Fatalf("ParseStorageConnectionString(%s) = %v", name, err)
	}
	c, err := queue.New(queue.Config{
		ServiceURL: st.QueueServiceURL, AccountName: st.AccountName, AccountKey: st.AccountKey,
		SAS: st.SharedAccessSignature, Queue: name,
	})
	if err != nil {
		t.Fatalf("New(%s) = %v", name, err)
	}
	return c
}

// mustQueue is an SDK client of our own, to look at what the package under test wrote.
func mustQueue(t *testing.T, a testenv.Azurite, name string) *azqueue.QueueClient {
	t.Helper()
	q, err := azqueue.NewQueueClientFromConnectionString(a.ConnectionString, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// mustOnlyMessage returns the single message in the queue, as stored and base64-decoded.
func mustOnlyMessage(t *testing.T, a testenv.Azurite, name string) (stored string, text []byte) {
	t.Helper()
	n := int32(32)
	resp, err := mustQueue(t, a, name).PeekMessages(mustContext(t), &azqueue.PeekMessagesOptions{NumberOfMessages: &n})
	if err != nil {
		t.Fatalf("peek %s: %v", name, err)
	}
	if len(resp.Messages) != 1 {
		t.Fatalf("queue %s holds %d messages; want 1", name, len(resp.Messages))
	}
	stored = *resp.Messages[0].MessageText
	text, err = base64.StdEncoding.DecodeString(stored)
	if err != nil {
		t.Fatalf("queue %s message %q is not base64: %v", name, stored, err)
	}
	return stored, text
}

func mustBeEmpty(t *testing.T, a testenv.Azurite, name string) {
	t.Helper()
	resp, err := mustQueue(t, a, name).PeekMessages(mustContext(t), nil)
	if err == nil && len(resp.Messages) != 0 {
		t.Errorf("queue %s holds %d messages; want none", name, len(resp.Messages))
	}
}

func mustClear(t *testing.T, a testenv.Azurite, name string) {
	t.Helper()
	if _, err := mustQueue(t, a, name).ClearMessages(mustContext(t), nil); err != nil {
		t.Fatalf("clear %s: %v", name, err)
	}
}

package state

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// fakeCredential stands for a managed identity; NewTable never asks it for a token before a request.
type fakeCredential struct{}

func (fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("no token in this test")
}

// TestNewTableRefusesConfig: NewTable takes the storage connection that settings parsed and
// refuses, before any request, a configuration that names no table service or not exactly one
// way to authorise. Its errors never repeat the key.
func TestNewTableRefusesConfig(t *testing.T) {
	t.Parallel()
	const (
		closed = "http://127.0.0.1:1/devstoreaccount1" // were a request sent, nothing would answer
		key    = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
		badKey = "not*base64*secret"
	)
	tests := []struct {
		name string
		cfg  TableConfig
	}{
		{"no service URL", TableConfig{AccountName: "devstoreaccount1", AccountKey: key}},
		{"no way to authorise", TableConfig{ServiceURL: closed}},
		{"account name alone", TableConfig{ServiceURL: closed, AccountName: "devstoreaccount1"}},
		{"key without account name", TableConfig{ServiceURL: closed, AccountKey: key}},
		{"key not base64", TableConfig{ServiceURL: closed, AccountName: "devstoreaccount1", AccountKey: badKey}},
		{"key and SAS", TableConfig{ServiceURL: closed, AccountName: "devstoreaccount1", AccountKey: key, SAS: "sv=2024-11-04&sig=x"}},
		{"key and credential", TableConfig{ServiceURL: closed, AccountName: "devstoreaccount1", AccountKey: key, Credential: fakeCredential{}}},
		{"SAS and credential", TableConfig{ServiceURL: closed, SAS: "sv=2024-11-04&sig=x", Credential: fakeCredential{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Table = "revokestate"
			_, err := NewTable(context.Background(), tt.cfg)
			if err == nil {
				t.Fatalf("NewTable(%+v) = nil error; want the configuration refused", tt.cfg)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), badKey) {
				t.Errorf("NewTable error %q repeats the account key", err)
			}
		})
	}
}

// TestEntityKeys: keys are short, use no character Table storage forbids, and differ whenever
// what they identify differs, including inputs that would run together if simply joined.
func TestEntityKeys(t *testing.T) {
	t.Parallel()
	keys := map[[2]string]string{}
	add := func(desc string, k [2]string) {
		t.Helper()
		if len(k[0]) > 80 || len(k[1]) > 8 || strings.ContainsAny(k[0]+k[1], "/\\#?\t\n\r\x00") {
			t.Errorf("%s: key %q is too long or has a forbidden character", desc, k)
		}
		if prev, ok := keys[k]; ok {
			t.Errorf("%s and %s share the key %q", desc, prev, k)
		}
		keys[k] = desc
	}
	long := strings.Repeat("é/#?", 300)
	add("request webhook ab", requestKey(RequestKey{Scope: "webhook", ID: "ab"}))
	add("request webhooka b", requestKey(RequestKey{Scope: "webhooka", ID: "b"}))
	add("request entra ab", requestKey(RequestKey{Scope: "entra:t:c", ID: "ab"}))
	add("request long", requestKey(RequestKey{Scope: "webhook", ID: long}))
	add("message ab", messageKey(MessageKey{MessageID: "ab", ContentHash: ""}))
	add("message a b", messageKey(MessageKey{MessageID: "a", ContentHash: "b"}))
	add("status ab", statusKey("ab"))
	add("status long", statusKey(long))
	add("rate guard", rateGuardKey)
}

func TestSharedLease(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		store       byte
		hash, inner string
	}{
		{'t', "abc", "0123.W/\"datetime'x'\""},
		{'m', "", "ff"},
		{'t', "a:9:b", ":7:"},
	} {
		lease := sharedLease(tt.store, tt.hash, tt.inner)
		store, hash, inner, ok := parseSharedLease(lease)
		if !ok || store != tt.store || hash != tt.hash || inner != tt.inner {
			t.Errorf("parseSharedLease(%q) = %c, %q, %q, %v; want %c, %q, %q", lease, store, hash, inner, ok, tt.store, tt.hash, tt.inner)
		}
	}
	for _, bad := range []string{"", "x3:abc", "t", "t9:ab", "t-1:ab", "tx:ab"} {
		if _, _, _, ok := parseSharedLease(bad); ok {
			t.Errorf("parseSharedLease(%q) ok; want refused", bad)
		}
	}
}

// TestTableErrorsHideSAS: with a SAS the signature is in every request URL,
// and a transport error (the table unreachable) prints its URL. Neither the start-up warning nor
// an operation's error, which callers log, may repeat it.
func TestTableErrorsHideSAS(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every request fails before an answer
	const sig = "c2FzLXNpZ25hdHVyZS1zZWNyZXQ"
	var logs bytes.Buffer
	tb, err := NewTable(context.Background(), TableConfig{
		ServiceURL: "http://" + addr + "/devstoreaccount1",
		SAS:        "sv=2024-11-04&sig=" + sig,
		Table:      "revokestate",
		Logger:     slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	if !strings.Contains(logs.String(), "unreachable") || strings.Contains(logs.String(), sig) {
		t.Errorf("start-up log = %s; want the table reported unreachable without the signature %s", logs.String(), sig)
	}
	ctx := context.Background()
	_, getErr := tb.GetStatus(ctx, "aaaaaaaaaaaaaaaaaaaaaa")
	_, claimErr := tb.Claim(ctx, RequestKey{Scope: "webhook", ID: "msg_1"}, "h", time.Minute)
	for _, err := range []error{getErr, claimErr} {
		if err == nil || strings.Contains(err.Error(), sig) {
			t.Errorf("operation error = %v; want an error without the signature %s", err, sig)
		}
	}
}

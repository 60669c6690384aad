package state

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseConnectionString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, conn   string
		wantEndpoint string
		wantSAS      bool
		wantErr      bool
	}{
		{"development storage", "UseDevelopmentStorage=true", devTableEndpoint, false, false},
		{"development storage, any case", "usedevelopmentstorage=TRUE;", devTableEndpoint, false, false},
		{"table endpoint", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + devKey + ";TableEndpoint=http://127.0.0.1:4711/devstoreaccount1/;", "http://127.0.0.1:4711/devstoreaccount1", false, false},
		{"azurite account without table endpoint", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + devKey + ";QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1", devTableEndpoint, false, false},
		{"account", "DefaultEndpointsProtocol=https;AccountName=revoke1;AccountKey=" + devKey + ";EndpointSuffix=core.windows.net", "https://revoke1.table.core.windows.net", false, false},
		{"sovereign cloud", "AccountName=revoke1;AccountKey=" + devKey + ";EndpointSuffix=core.chinacloudapi.cn", "https://revoke1.table.core.chinacloudapi.cn", false, false},
		{"keys in any case", "accountname=revoke1;ACCOUNTKEY=" + devKey, "https://revoke1.table.core.windows.net", false, false},
		{"sas", "TableEndpoint=https://revoke1.table.core.windows.net;SharedAccessSignature=?sv=2024&sig=x", "https://revoke1.table.core.windows.net", true, false},
		{"no key", "AccountName=revoke1", "", false, true},
		{"nothing", "EndpointSuffix=core.windows.net", "", false, true},
		{"not key=value", "AccountName", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConnectionString(tt.conn)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseConnectionString(%q) error = %v; want error %v", tt.conn, err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), devKey) {
					t.Errorf("error %q repeats the account key", err)
				}
				return
			}
			if c.endpoint != tt.wantEndpoint || (c.sas != "") != tt.wantSAS {
				t.Errorf("parseConnectionString(%q) = endpoint %q, sas %q; want %q, sas %v", tt.conn, c.endpoint, c.sas, tt.wantEndpoint, tt.wantSAS)
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

// TestTableErrorsHideSAS: with a SAS connection string the signature is in every request URL,
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
		ConnectionString: "TableEndpoint=http://" + addr + "/devstoreaccount1;SharedAccessSignature=sv=2024-11-04&sig=" + sig,
		Table:            "revokestate",
		Logger:           slog.New(slog.NewJSONHandler(&logs, nil)),
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

package settings

import (
	"reflect"
	"strings"
	"testing"
)

// A syntactically valid account key; it opens nothing. Tests check that it never shows in errors.
const testKey = "dGVzdCBrZXkgdGhhdCBtdXN0IG5vdCBsZWFr"

func TestLoadStorage(t *testing.T) {
	t.Parallel()
	const clientID = "6e5e9c43-1b0a-4a4e-9d8f-3f0c1f7b2a11"
	full := "DefaultEndpointsProtocol=https;AccountName=contosorevoke;AccountKey=" + testKey + ";EndpointSuffix=core.windows.net"
	fullStorage := Storage{
		ConnectionString: "DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=https://contosorevoke.queue.core.windows.net;TableEndpoint=https://contosorevoke.table.core.windows.net;",
		QueueServiceURL:  "https://contosorevoke.queue.core.windows.net", TableServiceURL: "https://contosorevoke.table.core.windows.net",
		AccountName: "contosorevoke", AccountKey: testKey,
	}
	azurite := Storage{
		ConnectionString: "DefaultEndpointsProtocol=http;EndpointSuffix=core.windows.net;AccountName=devstoreaccount1;AccountKey=" + devKey + ";QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;",
		QueueServiceURL:  "http://127.0.0.1:10001/devstoreaccount1", TableServiceURL: "http://127.0.0.1:10002/devstoreaccount1",
		AccountName: "devstoreaccount1", AccountKey: devKey,
	}
	sas := "QueueEndpoint=https://contoso.queue.core.windows.net/;TableEndpoint=https://contoso.table.core.windows.net;SharedAccessSignature=?sv=2022-11-02&sig=abc"
	tests := []struct {
		name    string
		env     env
		want    Storage
		wantErr string // prefix of the only problem; "" for success
	}{
		{name: "nothing set", env: env{}, want: Storage{}},
		{name: "blank values count as unset", env: env{EnvStorage: "  ", EnvStorageAccountName: " "}, want: Storage{}},
		{name: "full connection string", env: env{EnvStorage: full}, want: fullStorage},
		{name: "keys in any case, suffix by default", env: env{EnvStorage: "accountname=contosorevoke;ACCOUNTKEY=" + testKey}, want: fullStorage},
		{name: "development storage: Azurite's queues and tables", env: env{EnvStorage: "UseDevelopmentStorage=true"}, want: azurite},
		{name: "development storage, other case and a semicolon", env: env{EnvStorage: " usedevelopmentstorage=TRUE; "}, want: azurite},
		{name: "the expanded development storage", env: env{EnvStorage: DevelopmentStorage}, want: azurite},
		{name: "sovereign cloud suffix", env: env{EnvStorage: "AccountName=contosorevoke;AccountKey=" + testKey + ";EndpointSuffix=core.usgovcloudapi.net"},
			want: Storage{
				ConnectionString: "DefaultEndpointsProtocol=https;EndpointSuffix=core.usgovcloudapi.net;AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=https://contosorevoke.queue.core.usgovcloudapi.net;TableEndpoint=https://contosorevoke.table.core.usgovcloudapi.net;",
				QueueServiceURL:  "https://contosorevoke.queue.core.usgovcloudapi.net", TableServiceURL: "https://contosorevoke.table.core.usgovcloudapi.net",
				AccountName: "contosorevoke", AccountKey: testKey}},
		{name: "explicit endpoints win", env: env{EnvStorage: full + ";TableEndpoint=https://tables.contoso.com/;QueueEndpoint=http://127.0.0.1:10001/acct"},
			want: Storage{
				ConnectionString: "DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=http://127.0.0.1:10001/acct;TableEndpoint=https://tables.contoso.com;",
				QueueServiceURL:  "http://127.0.0.1:10001/acct", TableServiceURL: "https://tables.contoso.com",
				AccountName: "contosorevoke", AccountKey: testKey}},
		{name: "shared access signature", env: env{EnvStorage: sas},
			want: Storage{
				ConnectionString: "DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;SharedAccessSignature=sv=2022-11-02&sig=abc;QueueEndpoint=https://contoso.queue.core.windows.net;TableEndpoint=https://contoso.table.core.windows.net;",
				QueueServiceURL:  "https://contoso.queue.core.windows.net", TableServiceURL: "https://contoso.table.core.windows.net",
				SharedAccessSignature: "sv=2022-11-02&sig=abc"}},
		{name: "connection string wins, as on the host", env: env{EnvStorage: full, EnvStorageQueueServiceURI: "https://a.example.com", EnvStorageClientID: clientID}, want: fullStorage},

		{name: "queue and table service URIs", env: env{EnvStorageQueueServiceURI: "https://contosorevoke.queue.core.windows.net/", EnvStorageTableServiceURI: "https://tables.contoso.com"},
			want: Storage{QueueServiceURL: "https://contosorevoke.queue.core.windows.net", TableServiceURL: "https://tables.contoso.com"}},
		{name: "table service derived from the queue service URI", env: env{EnvStorageQueueServiceURI: "https://contosorevoke.queue.core.chinacloudapi.cn", EnvStorageClientID: clientID},
			want: Storage{QueueServiceURL: "https://contosorevoke.queue.core.chinacloudapi.cn", TableServiceURL: "https://contosorevoke.table.core.chinacloudapi.cn", ClientID: clientID}},
		{name: "account name", env: env{EnvStorageAccountName: "contosorevoke"},
			want: Storage{QueueServiceURL: "https://contosorevoke.queue.core.windows.net", TableServiceURL: "https://contosorevoke.table.core.windows.net"}},
		{name: "service URI wins over account name", env: env{EnvStorageQueueServiceURI: "https://a.example.com", EnvStorageAccountName: "other1"},
			want: Storage{QueueServiceURL: "https://a.example.com", TableServiceURL: "https://other1.table.core.windows.net"}},
		{name: "loopback service URIs (a local fake)", env: env{EnvStorageQueueServiceURI: "http://127.0.0.1:10001/acct", EnvStorageTableServiceURI: "http://127.0.0.1:10002/acct"},
			want: Storage{QueueServiceURL: "http://127.0.0.1:10001/acct", TableServiceURL: "http://127.0.0.1:10002/acct"}},

		{name: "not key=value", env: env{EnvStorage: "just-a-key"}, wantErr: "AzureWebJobsStorage: is not a list of key=value pairs"},
		{name: "no credential", env: env{EnvStorage: "AccountName=contosorevoke"}, wantErr: "AzureWebJobsStorage: needs AccountKey or SharedAccessSignature"},
		{name: "key without account", env: env{EnvStorage: "AccountKey=" + testKey}, wantErr: "AzureWebJobsStorage: AccountKey needs AccountName"},
		{name: "key not base64", env: env{EnvStorage: "AccountName=contosorevoke;AccountKey=not*base64"}, wantErr: "AzureWebJobsStorage: AccountKey is not valid base64"},
		{name: "key and SAS", env: env{EnvStorage: full + ";SharedAccessSignature=sig=x"}, wantErr: "AzureWebJobsStorage: gives AccountKey and SharedAccessSignature"},
		{name: "duplicate key", env: env{EnvStorage: full + ";accountname=other"}, wantErr: "AzureWebJobsStorage: gives accountname twice"},
		{name: "bad protocol", env: env{EnvStorage: "DefaultEndpointsProtocol=ftp;AccountName=contosorevoke;AccountKey=" + testKey}, wantErr: "AzureWebJobsStorage: DefaultEndpointsProtocol"},
		{name: "http to a real account", env: env{EnvStorage: "DefaultEndpointsProtocol=http;AccountName=contosorevoke;AccountKey=" + testKey}, wantErr: "AzureWebJobsStorage: the queue endpoint must use https"},
		{name: "bad account name", env: env{EnvStorage: "AccountName=Contoso_Revoke;AccountKey=" + testKey}, wantErr: "AzureWebJobsStorage: AccountName"},
		{name: "bad suffix", env: env{EnvStorage: full + "x;EndpointSuffix=not a suffix"}, wantErr: "AzureWebJobsStorage: "},
		{name: "bad endpoint", env: env{EnvStorage: "AccountName=contosorevoke;AccountKey=" + testKey + ";QueueEndpoint=contoso"}, wantErr: "AzureWebJobsStorage: the queue endpoint is not an absolute URL"},
		{name: "endpoint with a query", env: env{EnvStorage: "AccountName=contosorevoke;AccountKey=" + testKey + ";TableEndpoint=https://x.example.com/?sig=1"}, wantErr: "AzureWebJobsStorage: the table endpoint is not an absolute URL"},
		{name: "SAS without a queue endpoint", env: env{EnvStorage: "SharedAccessSignature=sig=x"}, wantErr: "AzureWebJobsStorage: needs AccountName or QueueEndpoint"},
		{name: "SAS without a table endpoint", env: env{EnvStorage: "QueueEndpoint=https://contoso.queue.core.windows.net;SharedAccessSignature=sig=x", "STATE_STORE": "table"},
			wantErr: "STATE_STORE: table, but the storage account names no table endpoint"},
		// Azurite's own strings name the services they have; a table built from the account would be http.
		{name: "http account with an explicit queue endpoint only", env: env{EnvStorage: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + testKey + ";QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"},
			want: Storage{ConnectionString: "DefaultEndpointsProtocol=http;EndpointSuffix=core.windows.net;AccountName=devstoreaccount1;AccountKey=" + testKey + ";QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;",
				QueueServiceURL: "http://127.0.0.1:10001/devstoreaccount1", AccountName: "devstoreaccount1", AccountKey: testKey}},
		{name: "development storage false", env: env{EnvStorage: "UseDevelopmentStorage=false"}, wantErr: "AzureWebJobsStorage: UseDevelopmentStorage must stand alone"},
		{name: "development storage with more", env: env{EnvStorage: "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://x"}, wantErr: "AzureWebJobsStorage: UseDevelopmentStorage must stand alone"},
		{name: "service URI over http", env: env{EnvStorageQueueServiceURI: "http://contoso.queue.core.windows.net"}, wantErr: EnvStorageQueueServiceURI + ": must use https"},
		{name: "service URI with SAS", env: env{EnvStorageQueueServiceURI: "https://contoso.queue.core.windows.net/?sig=abc"}, wantErr: EnvStorageQueueServiceURI + ": is not an absolute URL"},
		{name: "service URI not a URL", env: env{EnvStorageQueueServiceURI: "contoso"}, wantErr: EnvStorageQueueServiceURI + ": is not an absolute URL"},
		{name: "service URI with user info", env: env{EnvStorageQueueServiceURI: "https://u:p@contoso.queue.core.windows.net"}, wantErr: EnvStorageQueueServiceURI + ": "},
		{name: "table service URI over http", env: env{EnvStorageAccountName: "contosorevoke", EnvStorageTableServiceURI: "http://contoso.table.core.windows.net"}, wantErr: EnvStorageTableServiceURI + ": must use https"},
		{name: "only a table service URI", env: env{EnvStorageTableServiceURI: "https://contoso.table.core.windows.net"}, wantErr: EnvStorageQueueServiceURI + ": is needed"},
		{name: "queue service URI not naming the account", env: env{EnvStorageQueueServiceURI: "https://queues.contoso.com", "STATE_STORE": "table"},
			wantErr: "STATE_STORE: table, but the storage account has no table service URI"},
		{name: "account name with capitals", env: env{EnvStorageAccountName: "Contoso"}, wantErr: EnvStorageAccountName + ": "},
		{name: "account name too short", env: env{EnvStorageAccountName: "ab"}, wantErr: EnvStorageAccountName + ": "},
		{name: "client ID not a GUID", env: env{EnvStorageAccountName: "contosorevoke", EnvStorageClientID: "my-identity"}, wantErr: EnvStorageClientID + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := webhookOnly.with()
			for k, v := range tt.env {
				e[k] = v
			}
			s, err := Load(e.get)
			if tt.wantErr != "" {
				if err == nil || len(problems(err)) != 1 || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Load(%v) error = %v; want one problem starting %q", tt.env, err, tt.wantErr)
				}
				for _, secret := range []string{testKey, "sig=", "u:p"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("Load(%v) error %q shows a secret", tt.env, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%v) error = %v; want nil", tt.env, err)
			}
			if !reflect.DeepEqual(s.Storage, tt.want) {
				t.Errorf("Load(%v).Storage =\n%+v\nwant\n%+v", tt.env, s.Storage, tt.want)
			}
			if s.Storage.Configured() != (tt.want != Storage{}) {
				t.Errorf("Load(%v).Storage.Configured() = %v", tt.env, s.Storage.Configured())
			}
			if s.Storage.IdentityBased() != (tt.want.Configured() && tt.want.ConnectionString == "") {
				t.Errorf("Load(%v).Storage.IdentityBased() = %v", tt.env, s.Storage.IdentityBased())
			}
			// The rewritten connection string reads back as the same account.
			if s.Storage.ConnectionString != "" {
				again, err := ParseStorageConnectionString(s.Storage.ConnectionString)
				if err != nil || !reflect.DeepEqual(again, s.Storage) {
					t.Errorf("ParseStorageConnectionString(%q) = %+v, %v; want %+v", s.Storage.ConnectionString, again, err, s.Storage)
				}
			}
		})
	}
}

// Without a table the handler keeps state in memory: STATE_STORE=memory needs no table endpoint,
// and auto falls back to memory with a warning.
func TestLoadStorageWithoutATable(t *testing.T) {
	t.Parallel()
	queueOnly := webhookOnly.with(EnvStorage, "QueueEndpoint=https://contoso.queue.core.windows.net;SharedAccessSignature=sig=x")
	tests := []struct {
		env         env
		wantWarning string
	}{
		{queueOnly.with("STATE_STORE", "memory"), ""},
		{queueOnly, "STATE_STORE is auto but the storage account names no table endpoint: add TableEndpoint=… to AzureWebJobsStorage"},
		{webhookOnly.with(EnvStorageQueueServiceURI, "https://queues.contoso.com"), "STATE_STORE is auto but the storage account has no table service URI"},
	}
	for _, tt := range tests {
		s := mustLoad(t, tt.env)
		if s.StateStore != StateMemory || s.Storage.QueueServiceURL == "" || s.Storage.TableServiceURL != "" {
			t.Errorf("Load(%v) = state %q, storage %+v; want memory state and a queue without a table", tt.env, s.StateStore, s.Storage)
		}
		if got := strings.Join(s.Warnings, "\n"); (tt.wantWarning == "") != (got == "") || !strings.HasPrefix(got, tt.wantWarning) {
			t.Errorf("Load(%v).Warnings = %q; want %q", tt.env, s.Warnings, tt.wantWarning)
		}
	}
}

func TestLoadApplicationInsights(t *testing.T) {
	t.Parallel()
	good := webhookOnly.with("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=5ec2e7a1-0000-4000-8000-5ec2e7a15ec2;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;Authorization=AAD")
	s := mustLoad(t, good)
	if !s.Telemetry.Enabled() || !s.Telemetry.AAD || s.Telemetry.IngestionEndpoint != "https://westeurope-5.in.applicationinsights.azure.com" {
		t.Errorf("Load(%v).Telemetry = %+v; want the parsed connection string", good, s.Telemetry)
	}
	if s := mustLoad(t, webhookOnly); s.Telemetry.Enabled() {
		t.Errorf("Load without a connection string: Telemetry = %+v; want off", s.Telemetry)
	}
	bad := webhookOnly.with("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=not-a-key-SECRETVALUE;IngestionEndpoint=ftp://x", "DRY_RUN", "maybe")
	_, err := Load(bad.get)
	if got := problems(err); len(got) != 2 || !strings.HasPrefix(got[1], "APPLICATIONINSIGHTS_CONNECTION_STRING: ") || strings.Contains(err.Error(), "SECRETVALUE") {
		t.Errorf("Load(%v) problems = %q; want DRY_RUN's and APPLICATIONINSIGHTS_CONNECTION_STRING's in one list, no value", bad, got)
	}
}

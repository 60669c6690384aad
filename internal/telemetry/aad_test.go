package telemetry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
)

func TestAADTokenOnEveryBatch(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	token := "fake-token-" + randomHex(8)
	cred := graphtest.NewCredential(token)
	cred.FailFirst(1, errors.New("identity endpoint unavailable"))
	tel := mustNew(t, Config{Connection: f.connection(true), Credential: cred, BatchSize: 2, Interval: time.Hour})
	want := sendOutcomes(tel, 6)
	mustClose(t, tel)

	reqs, acc := f.snapshot()
	got := requestIDs(acc)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("accepted %v; want %v (a failed token fetch must not lose the batch)", got, want)
	}
	if len(reqs) < 3 {
		t.Errorf("got %d requests; want at least 3 batches", len(reqs))
	}
	for i, r := range reqs {
		if r.authorization != "Bearer "+token {
			t.Errorf("request %d Authorization = %q; want the credential's bearer token", i, r.authorization)
		}
	}
	scopes := cred.Scopes()
	if len(scopes) < len(reqs)+1 {
		t.Errorf("GetToken called %d times for %d requests (+1 failure); want once per batch", len(scopes), len(reqs))
	}
	for _, s := range scopes {
		if !slices.Equal(s, []string{AADScope}) {
			t.Errorf("GetToken scopes = %q; want [%q]", s, AADScope)
		}
	}
}

func TestNoTokenWithoutAAD(t *testing.T) {
	t.Parallel()
	f := newFakeIngestion(t)
	cred := graphtest.NewCredential("must-not-be-sent")
	tel := mustNew(t, Config{Connection: f.connection(false), Credential: cred, Interval: time.Hour})
	sendOutcomes(tel, 1)
	mustClose(t, tel)
	reqs, _ := f.snapshot()
	for i, r := range reqs {
		if r.authorization != "" {
			t.Errorf("request %d Authorization = %q; want none without Authorization=AAD", i, r.authorization)
		}
	}
}

// newAppServiceIdentity is an App Service managed-identity endpoint (IDENTITY_ENDPOINT,
// IDENTITY_HEADER, api-version 2019-08-01) that issues token for clientID and resource.
func newAppServiceIdentity(t *testing.T, header, clientID, resource, token string) (calls func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case r.Header.Get("X-IDENTITY-HEADER") != header:
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		case q.Get("api-version") != "2019-08-01" || q.Get("resource") != resource || q.Get("client_id") != clientID:
			t.Errorf("identity request %s; want api-version 2019-08-01, resource %s, client_id %s", r.URL.RawQuery, resource, clientID)
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		n++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"access_token": token, "token_type": "Bearer", "resource": resource, "client_id": clientID,
			"expires_on": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
		})
	}))
	t.Cleanup(srv.Close)
	t.Setenv("IDENTITY_ENDPOINT", srv.URL)
	t.Setenv("IDENTITY_HEADER", header)
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// The real azidentity ManagedIdentityCredential, as on App Service, gets the ingestion token.
// Not parallel: the credential reads IDENTITY_ENDPOINT and IDENTITY_HEADER from the environment.
func TestAADManagedIdentity(t *testing.T) {
	// A fresh client ID per run: MSAL caches managed-identity tokens process-wide by client ID.
	clientID := randomHex(4) + "-0000-4000-8000-" + randomHex(6)
	token := "mi-token-" + randomHex(8)
	calls := newAppServiceIdentity(t, "identity-header-secret", clientID, "https://monitor.azure.com/", token)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeIngestion(t)
	tel := mustNew(t, Config{Connection: f.connection(true), Credential: cred, BatchSize: 1, Interval: time.Hour})
	want := sendOutcomes(tel, 2)
	mustClose(t, tel)

	reqs, acc := f.snapshot()
	if got := requestIDs(acc); !slices.Equal(got, want) {
		t.Errorf("accepted %v; want %v", got, want)
	}
	for i, r := range reqs {
		if r.authorization != "Bearer "+token {
			t.Errorf("request %d Authorization = %q; want the identity endpoint's token", i, r.authorization)
		}
	}
	if calls() == 0 {
		t.Error("the identity endpoint was never asked for a token")
	}
}

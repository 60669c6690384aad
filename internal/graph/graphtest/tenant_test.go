package graphtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// revokeOnce POSTs a revocation of upn with the tenant's token and returns status, Retry-After
// and Graph's error code.
func revokeOnce(t *testing.T, tn *Tenant, upn string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tn.Graph.URL()+"/users/"+upn+"/revokeSignInSessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tn.Identity.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, resp.Header.Get("Retry-After"), e.Error.Code
}

func TestTenantWriteLimit(t *testing.T) {
	t.Parallel()
	tn := NewTenant(t, TenantOptions{WriteLimit: 3, WriteWindow: time.Hour})
	tn.Graph.AddUser(User{ID: "00000000-0000-4000-8000-000000000001", UPN: "a@contoso.com"})
	for i := range 3 {
		if status, _, _ := revokeOnce(t, tn, "a@contoso.com"); status != http.StatusOK {
			t.Fatalf("revocation %d within the limit = %d; want 200", i+1, status)
		}
	}
	status, retryAfter, code := revokeOnce(t, tn, "a@contoso.com")
	secs, err := strconv.Atoi(retryAfter)
	if status != http.StatusTooManyRequests || code != "TooManyRequests" || err != nil || secs < 3500 || secs > 3600 {
		t.Errorf("fourth revocation in the window = %d %q, Retry-After %q; want 429 TooManyRequests, Retry-After about 3600", status, code, retryAfter)
	}
	st := tn.Stats()
	if st.Requests != 4 || st.Throttled != 1 || st.Revocations != 3 || tn.RevocationsByUser()["a@contoso.com"] != 3 {
		t.Errorf("Stats = %+v, by user %v; want 4 requests, 1 throttled, 3 revocations of a@contoso.com", st, tn.RevocationsByUser())
	}
	if n := len(tn.Graph.Requests()); n != 0 {
		t.Errorf("Requests() kept %d records; want none without KeepRequests", n)
	}
}

func TestTenantOutage(t *testing.T) {
	t.Parallel()
	tn := NewTenant(t, TenantOptions{KeepRequests: true})
	id := "00000000-0000-4000-8000-000000000002"
	tn.Graph.AddUser(User{ID: id, UPN: "b@contoso.com"}, User{ID: "00000000-0000-4000-8000-000000000003", UPN: "c@contoso.com"})
	tn.Fail(http.StatusInternalServerError, time.Now().Add(time.Hour), id) // named by ID, revoked by UPN
	if status, _, code := revokeOnce(t, tn, "B@contoso.com"); status != http.StatusInternalServerError || code != "UnknownError" {
		t.Errorf("revocation during the outage = %d %q; want 500", status, code)
	}
	if status, _, _ := revokeOnce(t, tn, "c@contoso.com"); status != http.StatusOK {
		t.Errorf("revocation of another user = %d; want 200", status)
	}
	tn.Fail(http.StatusInternalServerError, time.Time{}, id)
	if status, _, _ := revokeOnce(t, tn, "b@contoso.com"); status != http.StatusOK {
		t.Errorf("revocation after the outage = %d; want 200", status)
	}
	st := tn.Stats()
	if st.Failed != 1 || st.Revocations != 2 || len(tn.Graph.Requests()) != 2 {
		t.Errorf("Stats = %+v with %d Graph records; want 1 failed, 2 revocations, 2 records (the failure never reached Graph)", st, len(tn.Graph.Requests()))
	}
}

func TestTenantRequiresTheIssuedToken(t *testing.T) {
	t.Parallel()
	tn := NewTenant(t, TenantOptions{})
	tn.Graph.AddUser(User{ID: "00000000-0000-4000-8000-000000000004", UPN: "d@contoso.com"})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, tn.Graph.URL()+"/users/d@contoso.com/revokeSignInSessions", nil)
	req.Header.Set("Authorization", "Bearer someone-else")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || tn.Stats().Revocations != 0 {
		t.Errorf("revocation with another token = %d, %d revocations; want 401 and none", resp.StatusCode, tn.Stats().Revocations)
	}
}

func TestSlidingWindow(t *testing.T) {
	t.Parallel()
	w := newSlidingWindow(2, 10*time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	steps := []struct {
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{0, true, 0},
		{time.Second, true, 0},
		{2 * time.Second, false, 8 * time.Second}, // the first admission frees its slot at 10 s
		{10 * time.Second, true, 0},
		{10 * time.Second, false, time.Second}, // the second frees at 11 s; refusals do not count
		{11 * time.Second, true, 0},
	}
	for _, s := range steps {
		wait, ok := w.admit(t0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Errorf("admit at %v = %v, %v; want %v, %v", s.at, wait, ok, s.wait, s.ok)
		}
	}
}

package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// Status links (the asynchronous request-reply pattern Logic Apps follows): a response with a
// queued user carries Location, Retry-After and statusUrl; GET on it answers 202 while a user is
// queued, then what the synchronous call would have answered. Two instances share one Azurite.

// statusBody is a response body with its link.
type statusBody struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	StatusURL string `json:"statusUrl"`
	Results   []struct {
		UPN    string `json:"upn"`
		Status string `json:"status"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	} `json:"results"`
}

func decodeStatus(t *testing.T, b []byte) statusBody {
	t.Helper()
	var s statusBody
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("body %.300s: %v", b, err)
	}
	return s
}

// asyncPost sends a signed respond-async request and checks the 202 and its link.
func asyncPost(t *testing.T, p *proc, msgID string, body []byte) (link string) {
	t.Helper()
	h := mustGoSigned(t, msgID, body)
	h.Set("Prefer", "respond-async")
	status, hdr, b := post(t, p.URL+"/api/revoke", h, body)
	s := decodeStatus(t, b)
	link = hdr.Get("Location")
	if status != http.StatusAccepted || link == "" || s.StatusURL != link || hdr.Get("Retry-After") == "" {
		t.Fatalf("respond-async = %d %.300s Location %q Retry-After %q; want 202 with Location = statusUrl and Retry-After", status, b, link, hdr.Get("Retry-After"))
	}
	return link
}

// on points a status link at instance p (the link names the host the caller used).
func on(t *testing.T, p *proc, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("status link %q: %v", link, err)
	}
	return p.URL + u.Path
}

func TestStatusLinks(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)

	t.Run("202 then the final outcome, from either instance", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "status")
		ps := instances(t, env, 2)
		link := asyncPost(t, ps[0], "msg_status_1", []byte(`{"upns":["alice@contoso.com","nobody@contoso.com"],"ticket":"INC9"}`))
		if !strings.HasPrefix(link, ps[0].URL+"/api/revoke/status/") {
			t.Errorf("link %q; want the caller's scheme and host (http on loopback)", link)
		}
		for _, p := range ps {
			status, hdr, b := get(t, on(t, p, link))
			if status != http.StatusAccepted || hdr.Get("Retry-After") == "" || hdr.Get("Location") == "" || hdr.Get("Cache-Control") != "no-store" || decodeStatus(t, b).Status != "queued" {
				t.Errorf("status on %s while queued = %d %v %s; want 202 queued with Location, Retry-After, no-store", p.URL, status, hdr, b)
			}
		}
		if status, _, _ := deliver(t, ps[1], az.ConnectionString, env["REVOKE_QUEUE"], 1); status != http.StatusOK {
			t.Fatalf("delivery = %d", status)
		}
		for _, p := range ps {
			status, hdr, b := get(t, on(t, p, link))
			s := decodeStatus(t, b)
			if status != http.StatusMultiStatus || s.Status != "partial" || s.ID != "msg_status_1" || s.StatusURL != "" || hdr.Get("Location") != "" ||
				len(s.Results) != 2 || s.Results[0].Status != "revoked" || s.Results[1].Status != "not_found" || hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("final status on %s = %d %v %s; want 207 as the synchronous call would answer", p.URL, status, hdr, b)
			}
		}
	})

	t.Run("a request that finally fails shows 503 through its link", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "failing")
		ps := instances(t, env, 2)
		link := asyncPost(t, ps[0], "msg_status_fail", []byte(`{"upn":"alice@contoso.com"}`))
		fail := graphtest.Response{Method: http.MethodPost, Status: http.StatusInternalServerError}
		g.Script("alice@contoso.com", fail, fail, fail, fail, fail)
		status, text, qid := deliver(t, ps[0], az.ConnectionString, env["REVOKE_QUEUE"], 1)
		if status < 300 {
			t.Fatalf("first delivery = %d; want a retry", status)
		}
		for n := 2; n <= 5; n++ {
			status = redeliver(t, ps[n%2], text, qid, n)
			got, _, b := get(t, on(t, ps[(n+1)%2], link))
			switch {
			case n < 5 && got != http.StatusAccepted:
				t.Errorf("status after delivery %d = %d %s; want 202", n, got, b)
			case n == 5 && (status != http.StatusOK || got != http.StatusServiceUnavailable || decodeStatus(t, b).Status != "failed"):
				t.Errorf("last delivery = %d, status %d %s; want 200 and 503 failed", status, got, b)
			}
		}
	})

	t.Run("forged and unknown handles get 404 and no data", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		ps := instances(t, sharedEnv(t, az, id, g, "forged"), 1)
		link := asyncPost(t, ps[0], "msg_status_secret", []byte(`{"upn":"alice@contoso.com","ticket":"SECRET-TICKET"}`))
		handle := link[strings.LastIndex(link, "/")+1:]
		flipped := []byte(handle)
		flipped[len(flipped)-1] ^= 1
		var first string
		for _, h := range []string{string(flipped), handle[:len(handle)-1], handle + handle, "AAAAAAAAAAAAAAAAAAAAAA", "x", "%2e%2e", strings.ToUpper(handle)} {
			status, hdr, b := get(t, ps[0].URL+"/api/revoke/status/"+h)
			if status != http.StatusNotFound || strings.Contains(string(b), "alice") || strings.Contains(string(b), "SECRET") || hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("GET status/%s = %d %s; want 404 without data", h, status, b)
			}
			if first == "" {
				first = string(b)
			} else if string(b) != first {
				t.Errorf("GET status/%s = %s; want the same answer as any unknown handle (%s)", h, b, first)
			}
		}
	})

	t.Run("PUBLIC_BASE_URL shapes the link", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "public")
		env["PUBLIC_BASE_URL"] = "https://revoke.contoso.com"
		ps := instances(t, env, 1)
		link := asyncPost(t, ps[0], "msg_status_public", []byte(`{"upn":"alice@contoso.com"}`))
		handle := strings.TrimPrefix(link, "https://revoke.contoso.com/api/revoke/status/")
		if handle == link || len(handle) < 22 || strings.ContainsAny(handle, "/+=?") {
			t.Errorf("link %q; want https://revoke.contoso.com/api/revoke/status/<URL-safe handle>", link)
		}
		if status, _, _ := get(t, on(t, ps[0], link)); status != http.StatusAccepted {
			t.Errorf("status = %d; want 202", status)
		}
	})

	t.Run("a hundred-user deferred request comes back whole", func(t *testing.T) {
		t.Parallel()
		id, g := tenant(t)
		env := sharedEnv(t, az, id, g, "whole")
		ps := instances(t, env, 2)
		users := longUsers(g, "async", 100)
		body, _ := json.Marshal(map[string]any{"upns": users, "reason": strings.Repeat("r", 1024), "ticket": "SIR-100"})
		link := asyncPost(t, ps[0], "msg_status_100", body)
		start := time.Now()
		if status, _, _ := deliver(t, ps[1], az.ConnectionString, env["REVOKE_QUEUE"], 1); status != http.StatusOK {
			t.Fatalf("delivery of 100 users = %d after %v", status, time.Since(start))
		}
		status, _, b := get(t, on(t, ps[0], link))
		s := decodeStatus(t, b)
		if status != http.StatusOK || s.Status != "revoked" || len(s.Results) != 100 {
			t.Fatalf("status of 100 users = %d, %q, %d results; want 200 revoked with all 100", status, s.Status, len(s.Results))
		}
		for i, r := range s.Results {
			if r.UPN != users[i] || r.Status != "revoked" {
				t.Errorf("result %d = %s %s; want %s revoked, in input order", i, r.UPN, r.Status, users[i])
			}
		}
		mustOnce(t, g, 1, users...)
	})
}

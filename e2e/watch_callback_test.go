package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/graph/graphtest"
	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// TestWatchCheckDeliversRevocationWatch: a request that names a callbackUrl hears what each
// sign-in check found — a signed revocation.watch event through the callback queue — as well as
// its revocation.completed.
func TestWatchCheckDeliversRevocationWatch(t *testing.T) {
	t.Parallel()
	az := testenv.StartAzurite(t)
	id, g := tenant(t)
	rc := newHookReceiver(t, nil)
	env := watchEnv(t, az, id, g, "wcb")
	env["CALLBACK_QUEUE"] = "e2e-wcb"
	env["CALLBACK_ALLOWED_HOSTS"] = "127.0.0.1"
	env["CALLBACK_SECRETS"] = callbackSecret1 + "," + callbackSecret2
	p := startHandler(t, env)

	u := watchUser{upn: "mallory@contoso.com", id: "0b0c0d0e-0000-4000-8000-00000000abcd", requestID: "msg_watch_callback"}
	g.AddUser(graphtest.User{ID: u.id, UPN: u.upn})
	body := []byte(`{"upn":"` + u.upn + `","ticket":"INC-WCB","callbackUrl":"` + rc.URL + `/hook"}`)
	status, _, b := post(t, p.URL+"/api/revoke", mustGoSigned(t, u.requestID, body), body)
	var res struct {
		StatusURL string `json:"statusUrl"`
		Results   []struct {
			RevokedAt string `json:"revokedAt"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil || status != http.StatusOK || len(res.Results) != 1 || res.StatusURL == "" {
		t.Fatalf("revoke = %d %s; want 200 with a status link", status, b)
	}
	u.link = res.StatusURL
	u.handle = res.StatusURL[strings.LastIndex(res.StatusURL, "/")+1:]
	u.revokedAt, _ = time.Parse(time.RFC3339, res.Results[0].RevokedAt)

	// The completed event first, then the check, which finds a sign-in after the revocation.
	text, qid := pollDequeue(t, az.ConnectionString, "e2e-wcb", 10*time.Second)
	deliverCallback(t, p, text, qid)
	g.AddSignIns(graphtest.SignIn{UserID: u.id, Created: u.revokedAt.Add(2 * time.Minute), App: "Outlook", IP: "203.0.113.7", ErrorCode: 0, Interactive: true})
	if status, reply := deliverCheck(t, p, checkText(t, u, "15m", time.Now()), "q-wcb-1", 1); status != http.StatusOK {
		t.Fatalf("check delivery = %d %s; want 200", status, reply)
	}
	text, qid = pollDequeue(t, az.ConnectionString, "e2e-wcb", 10*time.Second)
	deliverCallback(t, p, text, qid)

	var types []string
	var watchEvent *delivered
	for _, d := range rc.at("/hook") {
		ev := verified(t, d)
		types = append(types, ev.Type)
		if ev.Type == "revocation.watch" {
			watchEvent = &d
		}
	}
	if fmt.Sprint(types) != "[revocation.completed revocation.watch]" {
		t.Fatalf("receiver got %v; want revocation.completed then revocation.watch", types)
	}
	var w struct {
		Data struct {
			ID      string `json:"id"`
			Ticket  string `json:"ticket"`
			After   string `json:"after"`
			Results []struct {
				UPN     string `json:"upn"`
				UserID  string `json:"userId"`
				Finding string `json:"finding"`
				SignIns int    `json:"signIns"`
			} `json:"results"`
		} `json:"data"`
	}
	if err := json.Unmarshal(watchEvent.Body, &w); err != nil {
		t.Fatal(err)
	}
	if w.Data.ID != u.requestID || w.Data.After != "15m" || len(w.Data.Results) != 1 ||
		w.Data.Results[0].UserID != u.id || w.Data.Results[0].Finding != "signed_in_again" || w.Data.Results[0].SignIns != 1 {
		t.Errorf("revocation.watch = %s; want the check's finding signed_in_again for %s", watchEvent.Body, u.upn)
	}
}

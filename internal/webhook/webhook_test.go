package webhook

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entra-revoke/entra-revoke/internal/testenv"
)

// The signed request of the team's fixture http-revoke-signed.txt, verified independently with
// the standardwebhooks npm package.
const (
	fixtureSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	fixtureID        = "msg_2KWPBgLlAfxdpx2AI54pPJ85f50"
	fixtureTimestamp = 1763769541
	fixtureSignature = "v1,dg+lKABM6NEPDv8Fe+/aXedTej4w5pAInXyC0omiDrE="
	fixtureBody      = `{"upn":"alice@contoso.com","ticket":"INC0012345","reason":"Lost phone"}`
	fixtureFile      = "http-revoke-signed.txt"

	otherSecret = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=" // "second-secret-for-rotation"
)

var fixtureTime = time.Unix(fixtureTimestamp, 0)

func mustKeys(t testing.TB, secrets ...string) Keys {
	t.Helper()
	k, err := ParseSecrets(secrets)
	if err != nil {
		t.Fatalf("ParseSecrets(%d secrets): %v", len(secrets), err)
	}
	return k
}

// headers builds the three signature headers as net/http would hand them over.
func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set(HeaderID, id)
	}
	if ts != "" {
		h.Set(HeaderTimestamp, ts)
	}
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return h
}

func fixtureHeaders() http.Header {
	return headers(fixtureID, strconv.Itoa(fixtureTimestamp), fixtureSignature)
}

// The constants above must be the fixture's: read it as the host forwards it.
func TestFixtureVector(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(testenv.FixtureDir(t), fixtureFile))
	if err != nil {
		t.Skipf("fixture not at hand: %v", err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("parse %s: %v", fixtureFile, err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("read %s body: %v", fixtureFile, err)
	}
	if string(body) != fixtureBody {
		t.Errorf("fixture body = %q; want %q", body, fixtureBody)
	}
	for name, want := range map[string]string{HeaderID: fixtureID, HeaderTimestamp: strconv.Itoa(fixtureTimestamp), HeaderSignature: fixtureSignature} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("fixture header %s = %q; want %q", name, got, want)
		}
	}
	got, err := mustKeys(t, fixtureSecret).Verify(req.Header, body, fixtureTime, 5*time.Minute, 5*time.Minute)
	if err != nil || got.ID != fixtureID || got.KeyIndex != 0 {
		t.Errorf("Verify(fixture) = %+v, %v; want ID %q, key 0", got, err, fixtureID)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const tol = 5 * time.Minute
	keys := mustKeys(t, fixtureSecret)
	ts := strconv.Itoa(fixtureTimestamp)
	goodSig := strings.TrimPrefix(fixtureSignature, "v1,")
	tests := []struct {
		name    string
		keys    Keys
		h       http.Header
		body    string
		now     time.Time
		wantErr error
		wantKey int
	}{
		{name: "fixture", keys: keys, h: fixtureHeaders(), body: fixtureBody, now: fixtureTime},
		{name: "wrong secret", keys: mustKeys(t, otherSecret), h: fixtureHeaders(), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "no secrets", keys: Keys{}, h: fixtureHeaders(), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "altered body", keys: keys, h: fixtureHeaders(), body: strings.Replace(fixtureBody, "alice", "alicf", 1), now: fixtureTime, wantErr: ErrSignature},
		{name: "body with trailing newline", keys: keys, h: fixtureHeaders(), body: fixtureBody + "\n", now: fixtureTime, wantErr: ErrSignature},
		{name: "truncated body", keys: keys, h: fixtureHeaders(), body: fixtureBody[:len(fixtureBody)-1], now: fixtureTime, wantErr: ErrSignature},
		{name: "empty body", keys: keys, h: fixtureHeaders(), body: "", now: fixtureTime, wantErr: ErrSignature},
		{name: "altered id", keys: keys, h: headers(fixtureID+"1", ts, fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "altered timestamp", keys: keys, h: headers(fixtureID, strconv.Itoa(fixtureTimestamp+1), fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "altered signature", keys: keys, h: headers(fixtureID, ts, "v1,eg+lKABM6NEPDv8Fe+/aXedTej4w5pAInXyC0omiDrE="), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "signature without version", keys: keys, h: headers(fixtureID, ts, goodSig), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},

		// Timestamps: the boundary itself is accepted, one second past it is not.
		{name: "stale beyond tolerance", keys: keys, h: fixtureHeaders(), body: fixtureBody, now: fixtureTime.Add(tol + time.Second), wantErr: ErrExpired},
		{name: "stale just within tolerance", keys: keys, h: fixtureHeaders(), body: fixtureBody, now: fixtureTime.Add(tol)},
		{name: "future beyond tolerance", keys: keys, h: fixtureHeaders(), body: fixtureBody, now: fixtureTime.Add(-tol - time.Second), wantErr: ErrExpired},
		{name: "future just within tolerance", keys: keys, h: fixtureHeaders(), body: fixtureBody, now: fixtureTime.Add(-tol)},
		{name: "a day old", keys: keys, h: fixtureHeaders(), body: fixtureBody, now: fixtureTime.Add(24 * time.Hour), wantErr: ErrExpired},

		// Rotation: any configured secret verifies, and the caller learns which one.
		{name: "rotation, second secret", keys: mustKeys(t, otherSecret, fixtureSecret), h: fixtureHeaders(), body: fixtureBody, now: fixtureTime, wantKey: 1},
		{name: "rotation, first secret", keys: mustKeys(t, fixtureSecret, otherSecret), h: fixtureHeaders(), body: fixtureBody, now: fixtureTime, wantKey: 0},
		{name: "rotation, neither secret", keys: mustKeys(t, otherSecret, "whsec_dGhpcmQtc2VjcmV0LW5ldmVyLWNvbmZpZ3VyZWQ="), h: fixtureHeaders(), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},

		// Several signatures in one header, space-separated; only v1 counts.
		{name: "valid signature second", keys: keys, h: headers(fixtureID, ts, "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "+fixtureSignature), body: fixtureBody, now: fixtureTime},
		{name: "valid signature first", keys: keys, h: headers(fixtureID, ts, fixtureSignature+" v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), body: fixtureBody, now: fixtureTime},
		{name: "valid among other versions", keys: keys, h: headers(fixtureID, ts, "v1a,"+goodSig+" "+fixtureSignature+" v2,xyz"), body: fixtureBody, now: fixtureTime},
		{name: "only v2", keys: keys, h: headers(fixtureID, ts, "v2,"+goodSig), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "only v1a (asymmetric)", keys: keys, h: headers(fixtureID, ts, "v1a,"+goodSig), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "upper-case version", keys: keys, h: headers(fixtureID, ts, "V1,"+goodSig), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "many bad signatures", keys: keys, h: headers(fixtureID, ts, strings.Repeat("v1,AAAA ", 50)), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},

		// Missing headers.
		{name: "no headers", keys: keys, h: http.Header{}, body: fixtureBody, now: fixtureTime, wantErr: ErrMissing},
		{name: "no id", keys: keys, h: headers("", ts, fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrMissing},
		{name: "no timestamp", keys: keys, h: headers(fixtureID, "", fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrMissing},
		{name: "no signature", keys: keys, h: headers(fixtureID, ts, ""), body: fixtureBody, now: fixtureTime, wantErr: ErrMissing},
		{name: "empty values", keys: keys, h: http.Header{"Webhook-Id": {""}, "Webhook-Timestamp": {""}, "Webhook-Signature": {""}}, body: fixtureBody, now: fixtureTime, wantErr: ErrMissing},
		{name: "no headers, no secrets", keys: Keys{}, h: http.Header{}, body: fixtureBody, now: fixtureTime, wantErr: ErrMissing},

		// Malformed headers.
		{name: "non-numeric timestamp", keys: keys, h: headers(fixtureID, "yesterday", fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "RFC 3339 timestamp", keys: keys, h: headers(fixtureID, "2025-11-21T23:59:01Z", fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "fractional timestamp", keys: keys, h: headers(fixtureID, ts+".0", fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "millisecond timestamp", keys: keys, h: headers(fixtureID, ts+"000", fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "negative timestamp", keys: keys, h: headers(fixtureID, "-"+ts, fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "overflowing timestamp", keys: keys, h: headers(fixtureID, "99999999999999999999", fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "id with a space", keys: keys, h: headers("msg 1", ts, fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
		{name: "id too long", keys: keys, h: headers(strings.Repeat("i", maxIDLength+1), ts, fixtureSignature), body: fixtureBody, now: fixtureTime, wantErr: ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.keys.Verify(tt.h, []byte(tt.body), tt.now, tol, tol)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify(%v, %q, now %v) error = %v; want %v", tt.h, tt.body, tt.now.Unix(), err, tt.wantErr)
				}
				if got != (Signed{}) {
					t.Errorf("Verify(%v, %q) = %+v with an error; want the zero Signed", tt.h, tt.body, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify(%v, %q, now %v) error = %v; want nil", tt.h, tt.body, tt.now.Unix(), err)
			}
			want := Signed{ID: tt.h.Get(HeaderID), Timestamp: fixtureTime, KeyIndex: tt.wantKey}
			if !got.Timestamp.Equal(want.Timestamp) || got.ID != want.ID || got.KeyIndex != want.KeyIndex {
				t.Errorf("Verify(%v, %q) = %+v; want %+v", tt.h, tt.body, got, want)
			}
		})
	}
}

// maxAge and future are separate: the queue trigger accepts day-old messages but not ones
// signed in the future.
func TestVerifyAsymmetricWindow(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, fixtureSecret)
	body := []byte(fixtureBody)
	tests := []struct {
		now          time.Time
		maxAge, fut  time.Duration
		wantAccepted bool
	}{
		{fixtureTime.Add(23 * time.Hour), 24 * time.Hour, time.Minute, true},
		{fixtureTime.Add(25 * time.Hour), 24 * time.Hour, time.Minute, false},
		{fixtureTime.Add(-30 * time.Second), 24 * time.Hour, time.Minute, true},
		{fixtureTime.Add(-2 * time.Minute), 24 * time.Hour, time.Minute, false},
		{fixtureTime, 0, 0, true},
		{fixtureTime.Add(time.Second), 0, 0, false},
	}
	for _, tt := range tests {
		_, err := keys.Verify(fixtureHeaders(), body, tt.now, tt.maxAge, tt.fut)
		if (err == nil) != tt.wantAccepted || (err != nil && !errors.Is(err, ErrExpired)) {
			t.Errorf("Verify(fixture, now %+ds, maxAge %v, future %v) error = %v; want accepted %v",
				int(tt.now.Sub(fixtureTime).Seconds()), tt.maxAge, tt.fut, err, tt.wantAccepted)
		}
	}
}

// A longest allowed id still verifies; the bound is not off by one.
func TestVerifyLongID(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, fixtureSecret)
	id := strings.Repeat("i", maxIDLength)
	h, err := keys.Headers(id, fixtureTime, []byte(fixtureBody))
	if err != nil {
		t.Fatalf("Headers: %v", err)
	}
	if _, err := keys.Verify(h, []byte(fixtureBody), fixtureTime, time.Minute, time.Minute); err != nil {
		t.Errorf("Verify with a %d-byte id error = %v; want nil", len(id), err)
	}
}

// keyOf returns a secret whose key is n bytes long.
func keyOf(n int) string {
	return "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, n))
}

func TestParseSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		wantLen int
		wantErr string // substring; "" means success
	}{
		{"one", []string{fixtureSecret}, 1, ""},
		{"two", []string{fixtureSecret, otherSecret}, 2, ""},
		{"surrounding space", []string{"  " + fixtureSecret + "\t"}, 1, ""},
		{"none", nil, 0, ""},
		{"empty secret", []string{"whsec_"}, 0, "secret 1: is empty"},
		{"empty second secret", []string{fixtureSecret, "whsec_"}, 0, "secret 2: is empty"},
		{"padding only", []string{"whsec_===="}, 0, "secret 1:"},
		{"not base64", []string{"whsec_not base64!"}, 0, "secret 1: not valid base64"},
		{"URL-safe base64", []string{"whsec_-_-_"}, 0, "secret 1: not valid base64"},
		{"missing prefix", []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 0, "secret 1: must start with whsec_"},
		{"empty string", []string{""}, 0, "secret 1: must start with whsec_"},
		{"wrong prefix case", []string{"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 0, "must start with whsec_"},
		// Standard Webhooks: 24 to 64 bytes once decoded.
		{"shortest key", []string{keyOf(MinKeyBytes)}, 1, ""},
		{"longest key", []string{keyOf(MaxKeyBytes)}, 1, ""},
		{"key one byte short", []string{keyOf(MinKeyBytes - 1)}, 0, "secret 1: must decode to 24-64 bytes"},
		{"short key second", []string{fixtureSecret, "whsec_c2Vjb25kIHNlY3JldA=="}, 0, "secret 2: must decode to 24-64 bytes"},
		{"key one byte long", []string{keyOf(MaxKeyBytes + 1)}, 0, "secret 1: must decode to 24-64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseSecrets(tt.secrets)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSecrets(%q) error = %v; want one containing %q", tt.secrets, err, tt.wantErr)
				}
				if k.Len() != 0 {
					t.Errorf("ParseSecrets(%q) kept %d keys with an error; want 0", tt.secrets, k.Len())
				}
				for _, s := range tt.secrets {
					if raw := strings.TrimPrefix(s, "whsec_"); len(raw) > 3 && strings.Contains(err.Error(), raw) {
						t.Errorf("ParseSecrets(%q) error %q echoes the secret", tt.secrets, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSecrets(%q) error = %v; want nil", tt.secrets, err)
			}
			if k.Len() != tt.wantLen {
				t.Errorf("ParseSecrets(%q).Len() = %d; want %d", tt.secrets, k.Len(), tt.wantLen)
			}
		})
	}
}

// Sign must reproduce the independently computed fixture signature, and Headers must produce
// what Verify accepts.
func TestSignAndHeaders(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, fixtureSecret, otherSecret)
	sig, err := keys.Sign(fixtureID, fixtureTime, []byte(fixtureBody))
	if err != nil || sig != fixtureSignature {
		t.Errorf("Sign(fixture) = %q, %v; want %q", sig, err, fixtureSignature)
	}

	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"upns":["alice@contoso.com","bob@contoso.com"]}`)
	h, err := keys.Headers("msg_roundtrip", at, body)
	if err != nil {
		t.Fatalf("Headers: %v", err)
	}
	if got, want := h.Get(HeaderTimestamp), strconv.FormatInt(at.Unix(), 10); got != want {
		t.Errorf("Headers timestamp = %q; want %q", got, want)
	}
	if got := h.Get(HeaderID); got != "msg_roundtrip" {
		t.Errorf("Headers id = %q; want %q", got, "msg_roundtrip")
	}
	got, err := keys.Verify(h, body, at, time.Minute, time.Minute)
	if err != nil || got.ID != "msg_roundtrip" || !got.Timestamp.Equal(at) || got.KeyIndex != 0 {
		t.Errorf("Verify(Headers(...)) = %+v, %v; want msg_roundtrip at %v with key 0", got, err, at)
	}
	// The first secret signs: the second alone must not verify it.
	if _, err := mustKeys(t, otherSecret).Verify(h, body, at, time.Minute, time.Minute); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify with the second secret only error = %v; want %v", err, ErrSignature)
	}

	if _, err := (Keys{}).Sign("id", at, body); err == nil {
		t.Error("Keys{}.Sign error = nil; want an error")
	}
	if h, err := (Keys{}).Headers("id", at, body); err == nil || h != nil {
		t.Errorf("Keys{}.Headers = %v, %v; want nil and an error", h, err)
	}
}

// expectedSignature computes the Standard Webhooks v1 signature without the library.
func expectedSignature(key []byte, id string, unix int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(unix, 10) + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// FuzzVerify checks that Verify never panics and never accepts a message that was not signed with
// a configured key: an acceptance must carry the HMAC computed here independently, and a key set
// that lacks the secret accepts nothing.
func FuzzVerify(f *testing.F) {
	ts := strconv.Itoa(fixtureTimestamp)
	f.Add(fixtureID, ts, fixtureSignature, []byte(fixtureBody))
	f.Add(fixtureID, ts, "v1,AAAA "+fixtureSignature, []byte(fixtureBody))
	f.Add(fixtureID, ts, fixtureSignature, []byte(fixtureBody+" "))
	f.Add(fixtureID, "+"+ts, fixtureSignature, []byte(fixtureBody))
	f.Add(fixtureID, "0"+ts, fixtureSignature, []byte(fixtureBody))
	f.Add("", "", "", []byte{})
	f.Add("a", "-1", "v1,", []byte("x"))
	f.Add("a", "9223372036854775807", "v1,,, ,v1", []byte(nil))
	f.Add("msg\x00", ts, "v1,"+strings.Repeat("A", 44), []byte("\xff"))

	key := mustDecodeSecret(f, fixtureSecret)
	otherKey := mustDecodeSecret(f, otherSecret)
	keys := mustKeys(f, otherSecret, fixtureSecret)
	without := mustKeys(f, otherSecret)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		const tol = 5 * time.Minute

		// Without the fixture secret, only a genuine signature under the other secret may pass.
		if got, err := without.Verify(h, body, fixtureTime, tol, tol); err == nil &&
			!hasSignature(sig, expectedSignature(otherKey, got.ID, got.Timestamp.Unix(), body)) {
			t.Fatalf("Verify(id %q, ts %q, sig %q, body %q) accepted without the key", id, ts, sig, body)
		}

		got, err := keys.Verify(h, body, fixtureTime, tol, tol)
		if err != nil {
			if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrExpired) {
				t.Fatalf("Verify(id %q, ts %q, sig %q) error = %v; want one of the sentinel errors", id, ts, sig, err)
			}
			return
		}
		if got.ID != h.Get(HeaderID) {
			t.Fatalf("Verify(id %q) = ID %q", id, got.ID)
		}
		if d := got.Timestamp.Sub(fixtureTime); d > tol || d < -tol {
			t.Fatalf("Verify(ts %q) accepted a timestamp %v from now", ts, d)
		}
		k := key
		if got.KeyIndex == 0 {
			k = otherKey
		}
		if !hasSignature(sig, expectedSignature(k, got.ID, got.Timestamp.Unix(), body)) {
			t.Fatalf("Verify(id %q, ts %q, sig %q, body %q) = %+v without the matching HMAC", id, ts, sig, body, got)
		}
	})
}

func mustDecodeSecret(tb testing.TB, secret string) []byte {
	tb.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		tb.Fatalf("decode test secret: %v", err)
	}
	return key
}

// hasSignature reports whether the webhook-signature value lists a v1 signature equal to want,
// parsed as Standard Webhooks does: space-separated "version,signature" pairs.
func hasSignature(header, want string) bool {
	for _, s := range strings.Split(header, " ") {
		parts := strings.Split(s, ",")
		if len(parts) >= 2 && parts[0] == "v1" && parts[1] == want {
			return true
		}
	}
	return false
}

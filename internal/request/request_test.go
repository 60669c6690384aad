package request

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const guestUPN = "jane_fabrikam.com#EXT#@contoso.onmicrosoft.com"
const objectID = "3f1c2a4e-8b7d-4c1e-9f2a-6b5d4c3e2f1a"

// upnsJSON returns {"upns":[...]} with n distinct valid UPNs.
func upnsJSON(n int) string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%q", fmt.Sprintf("user%d@contoso.com", i))
	}
	return `{"upns":[` + strings.Join(users, ",") + `]}`
}

// mustRequestError asserts that err is an *Error and returns it.
func mustRequestError(t *testing.T, body string, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("Decode(%.200q) = nil error; want *Error", body)
	}
	var rerr *Error
	if !errors.As(err, &rerr) {
		t.Fatalf("Decode(%.200q) error = %T %v; want *Error", body, err, err)
	}
	return rerr
}

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	val := NewValidator()
	tests := []struct {
		name string
		body string
		want Body
	}{
		{
			name: "documented example",
			body: `{ "upn": "alice@contoso.com", "ticket": "INC0012345", "reason": "Lost phone", "requestedBy": "analyst@contoso.com", "dryRun": false }`,
			want: Body{UPN: "alice@contoso.com", Ticket: "INC0012345", Reason: "Lost phone", RequestedBy: "analyst@contoso.com"},
		},
		{
			name: "bulk with guest and object ID",
			body: `{"upns":["alice@contoso.com","` + guestUPN + `","` + objectID + `"],"ticket":"SIR-42"}`,
			want: Body{UPNs: []string{"alice@contoso.com", guestUPN, objectID}, Ticket: "SIR-42"},
		},
		{name: "object ID", body: `{"upn":"` + objectID + `"}`, want: Body{UPN: objectID}},
		{name: "dry run", body: `{"upn":"alice@contoso.com","dryRun":true}`, want: Body{UPN: "alice@contoso.com", DryRun: true}},
		{name: "surrounding whitespace", body: " \r\n\t{\"upn\":\"alice@contoso.com\"}\n\n ", want: Body{UPN: "alice@contoso.com"}},
		{name: "escaped characters decode first", body: `{"upn":"o\u0027brien@contoso.com"}`, want: Body{UPN: "o'brien@contoso.com"}},
		{name: "100 upns", body: upnsJSON(100)},
		{name: "ticket of 256 characters", body: `{"upn":"alice@contoso.com","ticket":"` + strings.Repeat("T", 256) + `"}`,
			want: Body{UPN: "alice@contoso.com", Ticket: strings.Repeat("T", 256)}},
		{name: "limits count characters, not bytes", body: `{"upn":"alice@contoso.com","ticket":"` + strings.Repeat("é", 256) + `","reason":"` + strings.Repeat("日", 1024) + `"}`,
			want: Body{UPN: "alice@contoso.com", Ticket: strings.Repeat("é", 256), Reason: strings.Repeat("日", 1024)}},
		{name: "reason of 1024 characters with punctuation", body: `{"upn":"alice@contoso.com","reason":"` + strings.Repeat("a b.", 256) + `"}`,
			want: Body{UPN: "alice@contoso.com", Reason: strings.Repeat("a b.", 256)}},
		{name: "null optional fields", body: `{"upn":"alice@contoso.com","ticket":null,"dryRun":null}`, want: Body{UPN: "alice@contoso.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := val.Decode([]byte(tt.body))
			if err != nil {
				t.Fatalf("Decode(%.200q) error = %v; want nil", tt.body, err)
			}
			if tt.want.UPN == "" && tt.want.UPNs == nil {
				return // only acceptance is asserted (the 100-user case)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%.200q) = %+v; want %+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	val := NewValidator()
	const alice = `"upn":"alice@contoso.com"`
	tests := []struct {
		name        string
		body        string
		wantMessage string
		wantDetails []Detail // nil: no details expected
	}{
		// Not one strict JSON object.
		{"empty body", ``, "body is not valid JSON", nil},
		{"whitespace body", " \n", "body is not valid JSON", nil},
		{"null body", `null`, "body must be a JSON object", nil},
		{"array", `[{` + alice + `}]`, "body must be a JSON object", nil},
		{"string", `"alice@contoso.com"`, "body must be a JSON object", nil},
		{"number", `42`, "body must be a JSON object", nil},
		{"truncated", `{` + alice, "body is not valid JSON", nil},
		{"syntax error", `{"upn" "alice@contoso.com"}`, "body is not valid JSON", nil},
		{"trailing comma", `{` + alice + `,}`, "body is not valid JSON", nil},
		{"single quotes", `{'upn':'alice@contoso.com'}`, "body is not valid JSON", nil},
		{"trailing data", `{` + alice + `} x`, "unexpected data after the JSON object", nil},
		{"trailing garbage without space", `{` + alice + `}}`, "unexpected data after the JSON object", nil},
		{"second object", `{` + alice + `}{"upn":"bob@contoso.com"}`, "unexpected data after the JSON object", nil},
		{"second value", `{` + alice + `} null`, "unexpected data after the JSON object", nil},
		{"invalid UTF-8", "{\"upn\":\"alice@contoso.com\",\"reason\":\"Lost \xff phone\"}", "body is not valid UTF-8", nil},
		{"UTF-8 byte order mark", "\xef\xbb\xbf{" + alice + "}", "body is not valid JSON", nil},
		{"over 64 KiB", `{` + alice + `,"reason":"` + strings.Repeat(" ", MaxBodyBytes) + `"}`, "body exceeds 65536 bytes", nil},

		// Fields.
		{"unknown field", `{` + alice + `,"priority":"high"}`, "invalid request", []Detail{{"priority", "is not a known field"}}},
		{"duplicate key", `{` + alice + `,"upn":"bob@contoso.com"}`, "invalid request", []Detail{{"upn", "appears more than once"}}},
		{"duplicate optional key", `{` + alice + `,"dryRun":false,"dryRun":true}`, "invalid request", []Detail{{"dryRun", "appears more than once"}}},

		// Wrong types, one per field.
		{"upn number", `{"upn":42}`, "invalid request", []Detail{{"upn", "has the wrong type, want string"}}},
		{"upn array", `{"upn":["alice@contoso.com"]}`, "invalid request", []Detail{{"upn", "has the wrong type, want string"}}},
		{"upn object", `{"upn":{}}`, "invalid request", []Detail{{"upn", "has the wrong type, want string"}}},
		{"upns string", `{"upns":"alice@contoso.com"}`, "invalid request", []Detail{{"upns", "has the wrong type, want array"}}},
		{"upns object", `{"upns":{"0":"alice@contoso.com"}}`, "invalid request", []Detail{{"upns", "has the wrong type, want array"}}},
		{"upns of numbers", `{"upns":[1]}`, "invalid request", []Detail{{"upns", "has the wrong type, want string"}}},
		{"ticket number", `{` + alice + `,"ticket":12345}`, "invalid request", []Detail{{"ticket", "has the wrong type, want string"}}},
		{"reason boolean", `{` + alice + `,"reason":true}`, "invalid request", []Detail{{"reason", "has the wrong type, want string"}}},
		{"requestedBy array", `{` + alice + `,"requestedBy":["a"]}`, "invalid request", []Detail{{"requestedBy", "has the wrong type, want string"}}},
		{"dryRun as string", `{` + alice + `,"dryRun":"true"}`, "invalid request", []Detail{{"dryRun", "has the wrong type, want boolean"}}},
		{"dryRun as number", `{` + alice + `,"dryRun":1}`, "invalid request", []Detail{{"dryRun", "has the wrong type, want boolean"}}},

		// upn / upns.
		{"neither upn nor upns", `{"ticket":"INC1"}`, "invalid request", []Detail{{"upn", "one of upn or upns is required"}}},
		{"empty object", `{}`, "invalid request", []Detail{{"upn", "one of upn or upns is required"}}},
		{"empty upn", `{"upn":""}`, "invalid request", []Detail{{"upn", "one of upn or upns is required"}}},
		{"both upn and upns", `{` + alice + `,"upns":["bob@contoso.com"]}`, "invalid request", []Detail{{"upns", "upn and upns are mutually exclusive"}}},
		{"empty upn with upns", `{"upn":"","upns":["bob@contoso.com"]}`, "invalid request", []Detail{{"upns", "upn and upns are mutually exclusive"}}},
		{"null upn with upns", `{"upn":null,"upns":["bob@contoso.com"]}`, "invalid request", []Detail{{"upns", "upn and upns are mutually exclusive"}}},
		{"upn with null upns", `{` + alice + `,"upns":null}`, "invalid request", []Detail{{"upns", "upn and upns are mutually exclusive"}}},
		{"empty upns", `{"upns":[]}`, "invalid request", []Detail{{"upns", "must hold at least 1 user"}}},
		{"101 upns", upnsJSON(101), "invalid request", []Detail{{"upns", "must hold at most 100 users"}}},
		{"invalid upn", `{"upn":"alice smith@contoso.com"}`, "invalid request",
			[]Detail{{"upn", "must be a user principal name (user@domain) or an object ID (GUID)"}}},
		{"JSON array in a string", `{"upn":"[\"a@b.com\"]"}`, "invalid request",
			[]Detail{{"upn", "must be a user principal name (user@domain) or an object ID (GUID)"}}},
		{"escaped control character in upn", `{"upn":"alice@contoso.com\u0000"}`, "invalid request",
			[]Detail{{"upn", "must be a user principal name (user@domain) or an object ID (GUID)"}}},
		{"invalid upns entries are named by index", `{"upns":["alice@contoso.com","bob@contoso.com","bad/one@contoso.com","carol@contoso.com","x"]}`, "invalid request",
			[]Detail{
				{"upns[2]", "must be a user principal name (user@domain) or an object ID (GUID)"},
				{"upns[4]", "must be a user principal name (user@domain) or an object ID (GUID)"},
			}},
		{"empty string in upns", `{"upns":["alice@contoso.com",""]}`, "invalid request",
			[]Detail{{"upns[1]", "must be a user principal name (user@domain) or an object ID (GUID)"}}},
		{"duplicate upns, case-insensitively", `{"upns":["alice@contoso.com","bob@contoso.com","Alice@Contoso.COM"]}`, "invalid request",
			[]Detail{{"upns[2]", "duplicate of upns[0]"}}},
		{"duplicate object IDs, case-insensitively", `{"upns":["` + objectID + `","` + strings.ToUpper(objectID) + `"]}`, "invalid request",
			[]Detail{{"upns[1]", "duplicate of upns[0]"}}},

		// ticket, reason, requestedBy.
		{"ticket of 257 characters", `{` + alice + `,"ticket":"` + strings.Repeat("T", 257) + `"}`, "invalid request",
			[]Detail{{"ticket", "must be at most 256 characters"}}},
		{"ticket with a control character", `{` + alice + `,"ticket":"INC\u0007123"}`, "invalid request",
			[]Detail{{"ticket", "must contain printable characters only"}}},
		{"ticket with a newline", `{` + alice + `,"ticket":"INC123\n"}`, "invalid request",
			[]Detail{{"ticket", "must contain printable characters only"}}},
		{"reason of 1025 characters", `{` + alice + `,"reason":"` + strings.Repeat("r", 1025) + `"}`, "invalid request",
			[]Detail{{"reason", "must be at most 1024 characters"}}},
		{"reason with a line separator", `{` + alice + `,"reason":"Lost\u2028phone"}`, "invalid request",
			[]Detail{{"reason", "must not contain control characters"}}},
		{"reason with a paragraph separator", `{` + alice + `,"reason":"Lost\u2029phone"}`, "invalid request",
			[]Detail{{"reason", "must not contain control characters"}}},
		{"reason with a newline", `{` + alice + `,"reason":"Lost\nphone"}`, "invalid request",
			[]Detail{{"reason", "must not contain control characters"}}},
		{"reason with a C1 control", `{` + alice + `,"reason":"Lost\u0085phone"}`, "invalid request",
			[]Detail{{"reason", "must not contain control characters"}}},
		{"requestedBy non-printable", `{` + alice + `,"requestedBy":"analyst\u200b@contoso.com"}`, "invalid request",
			[]Detail{{"requestedBy", "must contain printable characters only"}}},
		{"requestedBy with escape sequence", `{` + alice + `,"requestedBy":"\u001b[31manalyst"}`, "invalid request",
			[]Detail{{"requestedBy", "must contain printable characters only"}}},
		{"requestedBy of 257 characters", `{` + alice + `,"requestedBy":"` + strings.Repeat("r", 257) + `"}`, "invalid request",
			[]Detail{{"requestedBy", "must be at most 256 characters"}}},

		// Several problems are all reported, in field order.
		{"several problems", `{"upn":"bad","ticket":"` + strings.Repeat("T", 257) + `","reason":"a\u2028b"}`, "invalid request",
			[]Detail{
				{"upn", "must be a user principal name (user@domain) or an object ID (GUID)"},
				{"ticket", "must be at most 256 characters"},
				{"reason", "must not contain control characters"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := val.Decode([]byte(tt.body))
			rerr := mustRequestError(t, tt.body, err)
			if rerr.Message != tt.wantMessage {
				t.Errorf("Decode(%.200q) Message = %q; want %q", tt.body, rerr.Message, tt.wantMessage)
			}
			if !reflect.DeepEqual(rerr.Details, tt.wantDetails) {
				t.Errorf("Decode(%.200q) Details = %+v; want %+v", tt.body, rerr.Details, tt.wantDetails)
			}
			if got.UPN != "" || got.UPNs != nil {
				t.Errorf("Decode(%.200q) returned users %q %q with an error; want none", tt.body, got.UPN, got.UPNs)
			}
		})
	}
}

// A field name that differs only in case must not reach a field: encoding/json matches names
// case-insensitively, so "UPN" could shadow the "upn" that another parser in the caller's pipeline
// acted on.
func TestDecodeFieldNamesAreCaseSensitive(t *testing.T) {
	t.Parallel()
	val := NewValidator()
	tests := []struct {
		body      string
		wantField string
	}{
		{`{"UPN":"alice@contoso.com"}`, "UPN"},
		{`{"upn":"alice@contoso.com","UPN":"bob@contoso.com"}`, "UPN"},
		{`{"Upns":["alice@contoso.com"]}`, "Upns"},
		{`{"upn":"alice@contoso.com","DryRun":true}`, "DryRun"},
		{`{"upn":"alice@contoso.com","requestedby":"x"}`, "requestedby"},
		{`{"upn":"alice@contoso.com","upn\u017f":["bob@contoso.com"]}`, "upnſ"}, // ſ folds to s
	}
	for _, tt := range tests {
		_, err := val.Decode([]byte(tt.body))
		rerr := mustRequestError(t, tt.body, err)
		want := []Detail{{tt.wantField, "is not a known field"}}
		if !reflect.DeepEqual(rerr.Details, want) {
			t.Errorf("Decode(%q) Details = %+v; want %+v", tt.body, rerr.Details, want)
		}
	}
}

// Error details go back to an untrusted caller: they name fields and rules, never echo values,
// and an unknown field's name is bounded and valid UTF-8.
func TestDecodeErrorsDoNotEcho(t *testing.T) {
	t.Parallel()
	val := NewValidator()
	const marker = "SECRETVALUE"
	bodies := []string{
		`{"upn":"` + marker + `"}`,
		`{"upns":["alice@contoso.com","` + marker + `"]}`,
		`{"upn":"alice@contoso.com","ticket":"` + marker + strings.Repeat("x", 300) + `"}`,
		`{"upn":"alice@contoso.com","reason":"` + marker + `\u2028"}`,
		`{"upn":"alice@contoso.com","dryRun":"` + marker + `"}`,
		`{"upn":"alice@contoso.com"} ` + marker,
		`{"upn":"alice@contoso.com","` + strings.Repeat("k", 200) + `":1}`,
		`{"upn":"alice@contoso.com","a` + strings.Repeat("é", 40) + `":1}`, // 64 bytes would tear an é
	}
	for _, body := range bodies {
		_, err := val.Decode([]byte(body))
		rerr := mustRequestError(t, body, err)
		texts := []string{rerr.Message, rerr.Error()}
		for _, d := range rerr.Details {
			texts = append(texts, d.Field, d.Message)
			if len(d.Field) > 64 {
				t.Errorf("Decode(%.80q) detail field has %d bytes; want at most 64", body, len(d.Field))
			}
		}
		for _, s := range texts {
			if strings.Contains(s, marker) {
				t.Errorf("Decode(%.80q) error text %q echoes the value", body, s)
			}
			if !utf8.ValidString(s) {
				t.Errorf("Decode(%.80q) error text %q is not valid UTF-8", body, s)
			}
		}
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Message: "body is not valid JSON"}, "body is not valid JSON"},
		{&Error{Message: "invalid request", Details: []Detail{{"upns[2]", "duplicate of upns[0]"}, {"ticket", "x"}}}, "invalid request: upns[2] duplicate of upns[0]"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("(%+v).Error() = %q; want %q", *tt.err, got, tt.want)
		}
	}
}

// Validate is also called on bodies that did not come through Decode (the queue's unsigned
// messages, the CLI); it must apply the same rules.
func TestValidate(t *testing.T) {
	t.Parallel()
	val := NewValidator()
	tests := []struct {
		name      string
		in        Body
		wantField string // "" means valid
	}{
		{"one upn", Body{UPN: "alice@contoso.com"}, ""},
		{"upns", Body{UPNs: []string{"alice@contoso.com", objectID}}, ""},
		{"nothing", Body{}, "upn"},
		{"both", Body{UPN: "alice@contoso.com", UPNs: []string{"bob@contoso.com"}}, "upns"},
		{"empty upns", Body{UPNs: []string{}}, "upns"},
		{"bad upn", Body{UPN: "alice"}, "upn"},
		{"bad entry", Body{UPNs: []string{"alice@contoso.com", "bob"}}, "upns[1]"},
		{"duplicate", Body{UPNs: []string{"a@contoso.com", "A@contoso.com"}}, "upns[1]"},
		{"ticket", Body{UPN: "alice@contoso.com", Ticket: "\x00"}, "ticket"},
		{"reason", Body{UPN: "alice@contoso.com", Reason: "\r"}, "reason"},
		{"requestedBy", Body{UPN: "alice@contoso.com", RequestedBy: "\u2028"}, "requestedBy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := val.Validate(tt.in)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v; want nil", tt.in, err)
				}
				return
			}
			var rerr *Error
			if !errors.As(err, &rerr) || len(rerr.Details) == 0 {
				t.Fatalf("Validate(%+v) = %v; want *Error naming %q", tt.in, err, tt.wantField)
			}
			if got := rerr.Details[0].Field; got != tt.wantField {
				t.Errorf("Validate(%+v) first field = %q; want %q (details %+v)", tt.in, got, tt.wantField, rerr.Details)
			}
		})
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Body
		want []string
	}{
		{Body{UPN: "alice@contoso.com"}, []string{"alice@contoso.com"}},
		{Body{UPNs: []string{"b@contoso.com", "a@contoso.com"}}, []string{"b@contoso.com", "a@contoso.com"}},
		{Body{}, nil},
	}
	for _, tt := range tests {
		if got := tt.in.Users(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("(%+v).Users() = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// The validator is shared by every request of the server.
func TestValidatorConcurrentUse(t *testing.T) {
	t.Parallel()
	val := NewValidator()
	done := make(chan error)
	for i := range 8 {
		go func() {
			body := fmt.Sprintf(`{"upns":["user%d@contoso.com","bad%d"]}`, i, i)
			_, err := val.Decode([]byte(body))
			var rerr *Error
			if !errors.As(err, &rerr) || len(rerr.Details) != 1 || rerr.Details[0].Field != "upns[1]" {
				done <- fmt.Errorf("Decode(%q) = %v; want one detail for upns[1]", body, err)
				return
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

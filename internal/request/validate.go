package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"

	"github.com/entra-revoke/entra-revoke/internal/callbackurl"
)

// Detail names one invalid field.
type Detail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a request that cannot be accepted as sent. Message and Details are safe to return to
// the caller: they never echo more than field names and rules.
type Error struct {
	Message string
	Details []Detail
}

func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s: %s %s", e.Message, e.Details[0].Field, e.Details[0].Message)
}

// Validator decodes and validates request bodies. It is safe for concurrent use.
type Validator struct {
	v         *validator.Validate
	callbacks callbackurl.Hosts // empty: every callbackUrl is refused
}

// WithCallbackHosts returns a copy of val that accepts a callbackUrl on hosts (CALLBACK_ALLOWED_HOSTS).
func (val *Validator) WithCallbackHosts(hosts callbackurl.Hosts) *Validator {
	c := *val
	c.callbacks = hosts
	return &c
}

// NewValidator builds a validator with the contract's custom rules registered.
func NewValidator() *Validator {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		return name
	})
	rules := map[string]func(string) bool{
		"upn_or_id": func(s string) bool { return IsUPN(s) || IsObjectID(s) },
		"printable": isPrintable,
		"nocontrol": noControl,
	}
	for tag, fn := range rules {
		// Registration only fails for an empty tag or nil function, neither of which happens here.
		_ = v.RegisterValidation(tag, func(fl validator.FieldLevel) bool { return fn(fl.Field().String()) })
	}
	return &Validator{v: v}
}

// Decode parses body strictly (UTF-8, one JSON object, known fields of the right types, no
// duplicate keys, nothing after it) and validates it. Every failure is an *Error.
func (val *Validator) Decode(body []byte) (Body, error) {
	if len(body) > MaxBodyBytes {
		return Body{}, &Error{Message: fmt.Sprintf("body exceeds %d bytes", MaxBodyBytes)}
	}
	if !utf8.Valid(body) {
		// encoding/json would silently replace invalid bytes with U+FFFD, changing what was signed.
		return Body{}, &Error{Message: "body is not valid UTF-8"}
	}
	b, named, err := decodeObject(body)
	if err != nil {
		return Body{}, err
	}
	if named&fieldCallbackURL != 0 && b.CallbackURL == "" {
		return Body{}, &Error{Message: "invalid request", Details: []Detail{{Field: "callbackUrl", Message: "must be an absolute https URL"}}}
	}
	if named&(fieldUPN|fieldUPNs) == fieldUPN|fieldUPNs {
		// Exactly one of them, even when one is empty or null; Validate alone would let
		// {"upn":"","upns":[…]} through, since an empty upn looks absent once decoded.
		return Body{}, &Error{Message: "invalid request", Details: []Detail{{Field: "upns", Message: "upn and upns are mutually exclusive"}}}
	}
	if err := val.Validate(b); err != nil {
		// Fail closed: a caller that forgets to check err must not get users to act on.
		return Body{}, err
	}
	return b, nil
}

// Validate applies the field rules of the request body to an already decoded body.
func (val *Validator) Validate(b Body) error {
	var details []Detail
	switch {
	case b.UPN == "" && b.UPNs == nil:
		details = append(details, Detail{Field: "upn", Message: "one of upn or upns is required"})
	case b.UPN != "" && b.UPNs != nil:
		details = append(details, Detail{Field: "upns", Message: "upn and upns are mutually exclusive"})
	}
	if err := val.v.Struct(b); err != nil {
		var verrs validator.ValidationErrors
		if !errors.As(err, &verrs) {
			return &Error{Message: "invalid request"}
		}
		for _, fe := range verrs {
			details = append(details, Detail{Field: fieldPath(fe), Message: ruleMessage(fe)})
		}
	}
	if b.CallbackURL != "" {
		if err := val.callbacks.Check(b.CallbackURL); err != nil {
			details = append(details, Detail{Field: "callbackUrl", Message: err.Error()})
		}
	}
	seen := make(map[string]int, len(b.UPNs))
	for i, u := range b.UPNs {
		k := strings.ToLower(u)
		if j, dup := seen[k]; dup {
			details = append(details, Detail{Field: fmt.Sprintf("upns[%d]", i), Message: fmt.Sprintf("duplicate of upns[%d]", j)})
			continue
		}
		seen[k] = i
	}
	if len(details) > 0 {
		return &Error{Message: "invalid request", Details: details}
	}
	return nil
}

// fieldPath turns validator's "Body.upns[2]" into "upns[2]".
func fieldPath(fe validator.FieldError) string {
	ns := fe.Namespace()
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return fe.Field()
}

func ruleMessage(fe validator.FieldError) string {
	switch fe.Tag() {
	case "upn_or_id":
		return "must be a user principal name (user@domain) or an object ID (GUID)"
	case "max":
		if fe.Kind() == reflect.Slice {
			return fmt.Sprintf("must hold at most %s users", fe.Param())
		}
		return fmt.Sprintf("must be at most %s characters", fe.Param())
	case "min":
		return fmt.Sprintf("must hold at least %s user", fe.Param())
	case "printable":
		return "must contain printable characters only"
	case "nocontrol":
		return "must not contain control characters"
	}
	return "is invalid"
}

// unknownField reports a field that Body does not have, its name cut to 64 bytes of valid UTF-8.
func unknownField(name string) error {
	name = strings.ToValidUTF8(name[:min(len(name), 64)], "")
	return &Error{Message: "invalid request", Details: []Detail{{Field: name, Message: "is not a known field"}}}
}

// Bits of the set of names a body holds.
const (
	fieldUPN uint = 1 << iota
	fieldUPNs
	fieldCallbackURL = 1 << 6
)

// field returns where key's value goes and its bit in a set of seen fields, or nil for a name
// that is not exactly a field of Body.
func (b *Body) field(key string) (any, uint) {
	switch key {
	case "upn":
		return &b.UPN, fieldUPN
	case "upns":
		return &b.UPNs, fieldUPNs
	case "ticket":
		return &b.Ticket, 1 << 2
	case "reason":
		return &b.Reason, 1 << 3
	case "requestedBy":
		return &b.RequestedBy, 1 << 4
	case "dryRun":
		return &b.DryRun, 1 << 5
	case "callbackUrl":
		return &b.CallbackURL, fieldCallbackURL
	}
	return nil, 0
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice:
		return "array"
	}
	return t.String()
}

// decodeObject decodes body, which must be exactly one JSON object, in one pass, and returns the
// set of names it holds. It is stricter than json.Decoder.DisallowUnknownFields: encoding/json matches names case-insensitively ("UPN"
// would fill, and could shadow, "upn") and keeps the last of two values for one name, while
// another parser in the caller's pipeline may have acted on the first. The first syntax error,
// unknown or repeated name is reported; a value of the wrong type only if there is none.
func decodeObject(body []byte) (Body, uint, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil {
		return Body{}, 0, &Error{Message: "body is not valid JSON"}
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Body{}, 0, &Error{Message: "body must be a JSON object"}
	}
	var (
		b       Body
		seen    uint
		typeErr error
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Body{}, 0, &Error{Message: "body is not valid JSON"}
		}
		key, _ := tok.(string)
		dst, bit := b.field(key)
		if dst == nil {
			return Body{}, 0, unknownField(key)
		}
		if seen&bit != 0 {
			return Body{}, 0, &Error{Message: "invalid request", Details: []Detail{{Field: key, Message: "appears more than once"}}}
		}
		seen |= bit
		// A value of the wrong type is consumed whole, so decoding goes on to find worse errors.
		if err := dec.Decode(dst); err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				return Body{}, 0, &Error{Message: "body is not valid JSON"}
			}
			if typeErr == nil {
				typeErr = &Error{Message: "invalid request", Details: []Detail{{Field: key, Message: "has the wrong type, want " + typeName(te.Type)}}}
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Body{}, 0, &Error{Message: "body is not valid JSON"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Body{}, 0, &Error{Message: "unexpected data after the JSON object"}
	}
	if typeErr != nil {
		return Body{}, 0, typeErr
	}
	return b, seen, nil
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func noControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

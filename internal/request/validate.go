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
	v *validator.Validate
}

// NewValidator builds a validator with the SPEC's custom rules registered.
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
	if err := checkDuplicateKeys(body); err != nil {
		return Body{}, err
	}
	var b Body
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Body{}, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Body{}, &Error{Message: "unexpected data after the JSON object"}
	}
	if err := val.Validate(b); err != nil {
		// Fail closed: a caller that forgets to check err must not get users to act on.
		return Body{}, err
	}
	return b, nil
}

// Validate applies the field rules of SPEC §3 to an already decoded body.
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

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &Error{Message: "body must be a JSON object"}
		}
		return &Error{Message: "invalid request", Details: []Detail{{Field: field, Message: "has the wrong type, want " + typeName(typeErr.Type)}}}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &Error{Message: "body is not valid JSON"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields; the name is quoted by json itself.
		return unknownField(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	}
	return &Error{Message: "body is not valid JSON"}
}

// unknownField reports a field that Body does not have, its name cut to 64 bytes of valid UTF-8.
func unknownField(name string) error {
	name = strings.ToValidUTF8(name[:min(len(name), 64)], "")
	return &Error{Message: "invalid request", Details: []Detail{{Field: name, Message: "is not a known field"}}}
}

// knownField reports whether key is exactly the JSON name of a field of Body.
func knownField(key string) bool {
	t := reflect.TypeFor[Body]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name == key {
			return true
		}
	}
	return false
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

// checkDuplicateKeys rejects an object that names a top-level field twice: encoding/json keeps the
// last value, while another parser in the caller's pipeline may have acted on the first.
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return &Error{Message: "body is not valid JSON"}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return &Error{Message: "body must be a JSON object"}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return &Error{Message: "body is not valid JSON"}
		}
		key, _ := tok.(string)
		if !knownField(key) {
			// encoding/json matches names case-insensitively: "UPN" would fill, and could shadow, "upn".
			return unknownField(key)
		}
		if seen[key] {
			return &Error{Message: "invalid request", Details: []Detail{{Field: key, Message: "appears more than once"}}}
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return &Error{Message: "body is not valid JSON"}
		}
	}
	return nil
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

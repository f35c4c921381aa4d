package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// BodyError is a request body the API refuses: Status is 400 (bad JSON, unknown or
// mistyped field), 413 (too large) or 415 (not JSON); Field names the field at fault
// when there is one.
type BodyError struct {
	Status int
	Field  string
	Msg    string
}

func (e *BodyError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("request body: field %s: %s", e.Field, e.Msg)
	}
	return "request body: " + e.Msg
}

// readBody reads a request body up to MaxBodyBytes and checks its media type: a
// body must come as Content-Type: application/json (a browser cannot send that
// cross-site without asking first); a request without a body needs none.
func readBody(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, &BodyError{Status: http.StatusUnsupportedMediaType, Msg: "send Content-Type: application/json"}
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err == nil && ct == "" && len(b) > 0 {
		return nil, &BodyError{Status: http.StatusUnsupportedMediaType, Msg: "a body needs Content-Type: application/json"}
	}
	if err != nil {
		return nil, &BodyError{Status: http.StatusBadRequest, Msg: "cannot read the body"}
	}
	if len(b) > MaxBodyBytes {
		return nil, &BodyError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("larger than %d bytes", MaxBodyBytes)}
	}
	return b, nil
}

// decodeStrict decodes one JSON object into v: unknown fields, a second value, or a
// value of the wrong type are errors naming the field. An empty body is {}.
func decodeStrict(b []byte, v any) error { return decodeStrictAt(b, v, "") }

// decodeStrictAt is decodeStrict for a nested object: field names get prefix.
func decodeStrictAt(b []byte, v any, prefix string) error {
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}")
	}
	if err := checkKeys(b, reflect.TypeOf(v), prefix); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		err = bodyError(err)
		if be, ok := err.(*BodyError); ok && prefix != "" {
			if be.Field != "" {
				be.Field = prefix + "." + be.Field
			} else {
				be.Field = prefix
			}
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &BodyError{Status: http.StatusBadRequest, Msg: "more than one JSON value; send one object"}
	}
	return nil
}

// bodyError turns a json error into a BodyError that names the field, never echoing
// the value (a body may carry anything).
func bodyError(err error) error {
	bad := func(field, msg string) error {
		return &BodyError{Status: http.StatusBadRequest, Field: field, Msg: msg}
	}
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return bad("", fmt.Sprintf("invalid JSON at byte %d", syntax.Offset))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return bad("", fmt.Sprintf("want a JSON %s, got %s", typeName(typ.Type.Kind().String()), typ.Value))
		}
		return bad(typ.Field, fmt.Sprintf("want %s, got %s", typeName(typ.Type.Kind().String()), typ.Value))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return bad("", "truncated JSON")
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return bad(strings.Trim(name, `"`), "unknown field; see the API reference for the fields of this request")
	}
	// Other decoding errors come from field types (durations): the message says
	// which; json does not name the field, so the value's error is all there is.
	return bad("", "invalid value: "+msg)
}

func typeName(kind string) string {
	switch kind {
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "a list"
	case "struct", "map", "ptr":
		return "an object"
	}
	return kind
}

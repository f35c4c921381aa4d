package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
)

// checkKeys walks a JSON document against the Go type it is decoded into and
// refuses what encoding/json lets through silently: a key given twice in one
// object (json keeps the last, so {"force":false,"force":true} reads as true) and
// a key that matches a field only when case is ignored ({"Force":true}). Both are
// BodyErrors naming the field. Syntax errors are left to the decoder.
func checkKeys(b []byte, t reflect.Type, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := walkValue(dec, t, prefix)
	if _, ok := err.(*BodyError); ok {
		return err
	}
	return nil
}

// walkValue reads one value; t is the type it decodes into (nil: anything).
func walkValue(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case '{':
		fields := jsonFields(t)
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			field := joinPath(path, key)
			if seen[key] {
				return &BodyError{Status: http.StatusBadRequest, Field: field, Msg: "given twice; give each field once"}
			}
			seen[key] = true
			var sub reflect.Type
			if fields != nil {
				ft, ok := fields[key]
				if !ok {
					for name := range fields {
						if strings.EqualFold(name, key) {
							return &BodyError{Status: http.StatusBadRequest, Field: field, Msg: fmt.Sprintf("unknown field; field names are case-sensitive: write %q", name)}
						}
					}
				}
				sub = ft
			} else if t != nil && t.Kind() == reflect.Map {
				sub = t.Elem()
			}
			if err := walkValue(dec, sub, field); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields to their types; nil when t
// is not a struct (json.RawMessage, maps, interfaces).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

package pvesim

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The PVE 9.1 API schema (pve-docs api-viewer/apidata.js, descriptions removed), so
// that a clean clone validates requests without anything outside the repository.
//
//go:embed apischema/pve-api-schema.json.gz
var schemaGz []byte

// Param is one parameter of a method as the schema declares it.
type Param struct {
	Type      string          `json:"type"`
	Optional  json.RawMessage `json:"optional"`
	Enum      []string        `json:"enum"`
	Format    json.RawMessage `json:"format"`
	Pattern   string          `json:"pattern"`
	Minimum   json.RawMessage `json:"minimum"`
	Maximum   json.RawMessage `json:"maximum"`
	MaxLength *int            `json:"maxLength"`
	MinLength *int            `json:"minLength"`
}

// Method is one method of a path.
type Method struct {
	Name       string `json:"name"`
	Parameters struct {
		AdditionalProperties json.RawMessage  `json:"additionalProperties"`
		Properties           map[string]Param `json:"properties"`
	} `json:"parameters"`
	Returns json.RawMessage `json:"returns"`
}

type pathEntry struct {
	Path    string            `json:"path"`
	Methods map[string]Method `json:"methods"`
	parts   []string
}

// Schema is the parsed API schema: paths with their methods and parameters.
type Schema struct {
	paths []pathEntry
}

// The parsed schema and the compiled patterns are caches of immutable embedded data,
// shared by every server of a test process: parsing 1 MB per server would dominate
// the tests' time.
var (
	schemaOnce sync.Once
	schemaVal  *Schema
	schemaErr  error
)

// LoadSchema parses the embedded schema (once per process).
func LoadSchema() (*Schema, error) {
	schemaOnce.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(schemaGz))
		if err != nil {
			schemaErr = fmt.Errorf("open embedded API schema: %w", err)
			return
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			schemaErr = fmt.Errorf("read embedded API schema: %w", err)
			return
		}
		schemaVal, schemaErr = ParseSchema(raw)
	})
	return schemaVal, schemaErr
}

// ParseSchema parses a schema file of the shape {"paths": [{path, methods}]}.
func ParseSchema(raw []byte) (*Schema, error) {
	var doc struct {
		Paths []pathEntry `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse API schema: %w", err)
	}
	if len(doc.Paths) == 0 {
		return nil, fmt.Errorf("parse API schema: no paths")
	}
	for i := range doc.Paths {
		doc.Paths[i].parts = strings.Split(strings.Trim(doc.Paths[i].Path, "/"), "/")
	}
	return &Schema{paths: doc.Paths}, nil
}

// Lookup finds the schema path matching the concrete path (below /api2/json) and
// returns it with the values of its {placeholders}. Literal segments win over
// placeholders, as in PVE's router.
func (s *Schema) Lookup(path string) (string, map[string]string, map[string]Method, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, bestLit := -1, -1
	for i, p := range s.paths {
		if len(p.parts) != len(segs) {
			continue
		}
		lit, ok := 0, true
		for j, part := range p.parts {
			if strings.HasPrefix(part, "{") {
				continue
			}
			if part != segs[j] {
				ok = false
				break
			}
			lit++
		}
		if ok && lit > bestLit {
			best, bestLit = i, lit
		}
	}
	if best < 0 {
		return "", nil, nil, false
	}
	p := s.paths[best]
	vars := map[string]string{}
	for j, part := range p.parts {
		if strings.HasPrefix(part, "{") {
			vars[strings.Trim(part, "{}")] = segs[j]
		}
	}
	return p.Path, vars, p.Methods, true
}

// Validate checks params (every value as the string it arrived as, or a JSON value)
// against m and returns PVE's errors map: parameter name -> message. Empty = valid.
func (m Method) Validate(params map[string]any) map[string]string {
	errs := map[string]string{}
	for name, p := range m.Parameters.Properties {
		v, ok := params[name]
		if !ok {
			if !truthy(p.Optional) {
				errs[name] = "property is missing and it is not optional"
			}
			continue
		}
		if msg := p.check(v); msg != "" {
			errs[name] = msg
		}
	}
	if !truthy(m.Parameters.AdditionalProperties) {
		for name := range params {
			if _, ok := m.Parameters.Properties[name]; !ok {
				errs[name] = "property is not defined in schema and the schema does not allow additional properties"
			}
		}
	}
	return errs
}

func truthy(raw json.RawMessage) bool {
	s := strings.Trim(string(raw), `"`)
	return s == "1" || s == "true"
}

func number(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.Trim(string(raw), `"`), 64)
	return f, err == nil
}

// scalar turns a JSON or form value into the string PVE's parser would see.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "1", true
		}
		return "0", true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case json.Number:
		return x.String(), true
	case nil:
		return "", true
	}
	return "", false
}

var (
	intRe   = regexp.MustCompile(`^[+-]?\d+$`)
	numRe   = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)
	nodeRe  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)
	confRe  = regexp.MustCompile(`^[a-z][a-z0-9_]+$`)
	storRe  = regexp.MustCompile(`^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	userRe  = regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$`)
	perlRe  = regexp.MustCompile(`\(\?\^[a-z]*:`)
	reCache sync.Map
)

func (p Param) check(v any) string {
	if p.Type == "array" {
		if _, ok := v.([]any); ok {
			return ""
		}
	}
	s, ok := scalar(v)
	if !ok {
		return fmt.Sprintf("type check ('%s') failed - got a structure", p.Type)
	}
	switch p.Type {
	case "boolean":
		switch strings.ToLower(s) {
		case "0", "1", "true", "false", "yes", "no", "on", "off":
		default:
			return fmt.Sprintf("type check ('boolean') failed - got '%s'", s)
		}
	case "integer":
		if !intRe.MatchString(s) {
			return fmt.Sprintf("type check ('integer') failed - got '%s'", s)
		}
	case "number":
		if !numRe.MatchString(s) {
			return fmt.Sprintf("type check ('number') failed - got '%s'", s)
		}
	}
	if p.Type == "integer" || p.Type == "number" {
		f, _ := strconv.ParseFloat(s, 64)
		if lo, ok := number(p.Minimum); ok && f < lo {
			return fmt.Sprintf("value must have a minimum value of %s", strconv.FormatFloat(lo, 'f', -1, 64))
		}
		if hi, ok := number(p.Maximum); ok && f > hi {
			return fmt.Sprintf("value must have a maximum value of %s", strconv.FormatFloat(hi, 'f', -1, 64))
		}
	}
	if len(p.Enum) > 0 {
		found := false
		for _, e := range p.Enum {
			if e == s {
				found = true
			}
		}
		if !found {
			return fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", s, strings.Join(p.Enum, ", "))
		}
	}
	if p.MaxLength != nil && len(s) > *p.MaxLength {
		return fmt.Sprintf("value may only be %d characters long", *p.MaxLength)
	}
	if p.MinLength != nil && len(s) < *p.MinLength {
		return fmt.Sprintf("value must be at least %d characters long", *p.MinLength)
	}
	if p.Pattern != "" {
		if re := compilePattern(p.Pattern); re != nil && !re.MatchString(s) {
			return "value does not match the regex pattern"
		}
	}
	var format string
	if json.Unmarshal(p.Format, &format) == nil && format != "" {
		if msg := checkFormat(format, s); msg != "" {
			return msg
		}
	}
	return ""
}

// compilePattern turns a Perl pattern of the schema into an anchored Go regexp; the
// few Perl constructs Go lacks make the pattern unchecked (nil), never a false error.
func compilePattern(pat string) *regexp.Regexp {
	if re, ok := reCache.Load(pat); ok {
		r, _ := re.(*regexp.Regexp)
		return r
	}
	goPat := perlRe.ReplaceAllString(pat, "(?:")
	re, err := regexp.Compile("^(?:" + goPat + ")$")
	if err != nil {
		re = nil
	}
	reCache.Store(pat, re)
	return re
}

// checkFormat checks the named formats the driver's calls use; formats without a
// checker here pass (they are free-form or property strings).
func checkFormat(format, s string) string {
	bad := func() string { return fmt.Sprintf("value does not look like a valid %s", format) }
	switch format {
	case "pve-node":
		if !nodeRe.MatchString(s) {
			return "invalid format - value does not look like a valid node name"
		}
	case "pve-vmid":
		if !intRe.MatchString(s) {
			return bad()
		}
	case "pve-configid":
		if !confRe.MatchString(s) {
			return bad()
		}
	case "pve-storage-id":
		if !storRe.MatchString(s) {
			return bad()
		}
	case "pve-userid":
		if !userRe.MatchString(s) {
			return bad()
		}
	case "CIDR":
		if _, _, err := net.ParseCIDR(s); err != nil {
			return bad()
		}
	case "ip":
		if net.ParseIP(s) == nil {
			return bad()
		}
	case "pve-node-list":
		for _, n := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
			if !nodeRe.MatchString(n) {
				return bad()
			}
		}
	}
	return ""
}

// CheckReturn checks an answer against a method's return schema, loosely: the type
// of the value, and for objects and array items the presence and type of every
// non-optional property. It returns the problems found.
func CheckReturn(returns json.RawMessage, v any) []string {
	var s retSchema
	if len(returns) == 0 || json.Unmarshal(returns, &s) != nil {
		return nil
	}
	var out []string
	s.check("data", v, &out)
	sort.Strings(out)
	return out
}

type retSchema struct {
	Type       string               `json:"type"`
	Optional   json.RawMessage      `json:"optional"`
	Items      *retSchema           `json:"items"`
	Properties map[string]retSchema `json:"properties"`
	Enum       []string             `json:"enum"`
}

func (s retSchema) check(at string, v any, out *[]string) {
	if v == nil {
		if s.Type != "null" && s.Type != "" && !truthy(s.Optional) {
			*out = append(*out, at+": null, want "+s.Type)
		}
		return
	}
	switch s.Type {
	case "null":
		*out = append(*out, at+": want null")
	case "string":
		str, ok := v.(string)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want string, got %T", at, v))
		} else if len(s.Enum) > 0 && !contains(s.Enum, str) {
			*out = append(*out, fmt.Sprintf("%s: %q not in enum", at, str))
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != math.Trunc(f) {
			*out = append(*out, fmt.Sprintf("%s: want integer, got %v", at, v))
		}
	case "number":
		if _, ok := v.(float64); !ok {
			*out = append(*out, fmt.Sprintf("%s: want number, got %T", at, v))
		}
	case "boolean":
		switch x := v.(type) {
		case bool:
		case float64:
			if x != 0 && x != 1 {
				*out = append(*out, fmt.Sprintf("%s: want boolean, got %v", at, v))
			}
		default:
			*out = append(*out, fmt.Sprintf("%s: want boolean, got %T", at, v))
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want array, got %T", at, v))
			return
		}
		if s.Items != nil {
			for i, e := range arr {
				s.Items.check(fmt.Sprintf("%s[%d]", at, i), e, out)
			}
		}
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want object, got %T", at, v))
			return
		}
		for name, p := range s.Properties {
			pv, ok := obj[name]
			if !ok {
				if !truthy(p.Optional) {
					*out = append(*out, at+"."+name+": missing")
				}
				continue
			}
			p.check(at+"."+name, pv, out)
		}
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the config file (and each secret file) Load reads.
const MaxFileSize = 4 << 20

// maxNodes bounds the YAML nodes decoded, aliases included, so that a small
// file of nested aliases ("billion laughs") cannot blow up.
const maxNodes = 200000

// Load reads, decodes, completes and validates the config file at path.
//
// Every problem is reported at once as Errors, each naming file:line: field.
// Unknown keys are errors. ${ENV_VAR} in any scalar is replaced by the
// variable ($${ is a literal ${); a variable that is not set is an error.
// The *_file secrets are read into their Secret fields. Keys that are absent
// take the defaults of docs/configuration.md, and relative paths are resolved
// against the directory of path. On error the config is nil.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: "cannot read config: " + causeOf(err), Err: err}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, Errors{{File: path, Msg: "cannot read config: " + causeOf(err), Err: err}}
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("config file larger than %d bytes", MaxFileSize)}}
	}
	return Parse(path, data)
}

// Parse is Load for data already read; file names it in errors and anchors
// relative paths. Environment variables come from the process environment.
func Parse(file string, data []byte) (*Config, error) {
	return parse(file, data, os.LookupEnv)
}

func parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	cfg := &Config{Path: file, lines: map[string]int{}}
	d := &decoder{errorList: errorList{file: file, lines: cfg.lines}, lookup: lookup, budget: maxNodes}

	root, err := parseYAML(data)
	if err != nil {
		d.errs = append(d.errs, syntaxError(file, err))
		return nil, d.err()
	}
	if root != nil {
		if root.Kind != yaml.MappingNode {
			d.at(root.Line, "", "the config must be a mapping of keys (listen:, routes:, ...)")
			return nil, d.err()
		}
		d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	}

	applyDefaults(cfg)
	dir := filepath.Dir(file)
	readSecrets(cfg, dir, &d.errorList)
	resolvePaths(cfg, dir)

	// Validation sees a partly decoded config; drop what it says about
	// fields that already failed to decode, which would only repeat it.
	bad := map[string]bool{}
	for _, e := range d.errs {
		bad[e.Field] = true
	}
	var verrs Errors
	if err := cfg.Validate(); err != nil && !errors.As(err, &verrs) {
		return nil, err
	}
	for _, e := range verrs {
		if !underAny(e.Field, bad) && !aboveAny(e.Field, bad) {
			d.errs = append(d.errs, e)
		}
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// underAny reports whether field or one of its parents is in set.
func underAny(field string, set map[string]bool) bool {
	for f := field; f != ""; f = parentPath(f) {
		if set[f] {
			return true
		}
	}
	return false
}

// aboveAny reports whether a member of set lies under field (a rule whose
// downloads_over failed to decode need not also be told it has no condition).
func aboveAny(field string, set map[string]bool) bool {
	for f := range set {
		if f != field && f != "" && parentPath(f) != "" && underAny(parentPath(f), map[string]bool{field: true}) {
			return true
		}
	}
	return false
}

// parseYAML returns the single document's root node, or nil for an empty file.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: a config holds one YAML document; found another after ---", extra.Line)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		n := doc.Content[0]
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil, nil
		}
		return n, nil
	}
	return &doc, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into a FieldError with its line.
func syntaxError(file string, err error) *FieldError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &FieldError{File: file, Line: n, Msg: "invalid YAML: " + m[2], Err: err}
	}
	return &FieldError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: "), Err: err}
}

// causeOf strips the path from an *os.PathError, which the caller names.
func causeOf(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

type decoder struct {
	errorList
	lookup func(string) (string, bool)
	budget int
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// decode sets v from n, recording the line of every key under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for depth := 0; n.Kind == yaml.AliasNode; depth++ {
		if n.Alias == nil || depth > 100 {
			d.at(n.Line, path, "unresolvable alias")
			return
		}
		n = n.Alias
	}
	d.budget--
	if d.budget == 0 {
		d.at(n.Line, path, "document too large: more than %d values (aliases included)", maxNodes)
	}
	if d.budget <= 0 {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.SetZero()
		return
	}
	t := v.Type()
	switch {
	case t == durationType || t == sizeType:
		s, ok := d.scalar(n, path, t)
		if !ok {
			return
		}
		if t == durationType {
			x, err := ParseDuration(s)
			if err != nil {
				d.at(n.Line, path, "%s", strings.TrimPrefix(err.Error(), ErrDuration.Error()+" "))
				return
			}
			v.SetInt(int64(x))
		} else {
			x, err := ParseSize(s)
			if err != nil {
				d.at(n.Line, path, "%s", strings.TrimPrefix(err.Error(), ErrSize.Error()+" "))
				return
			}
			v.SetInt(int64(x))
		}
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path)
	case t.Kind() == reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.at(n.Line, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ip := path + "[" + strconv.Itoa(i) + "]"
			d.lines[ip] = item.Line
			d.decode(item, s.Index(i), ip)
		}
		v.Set(s)
	case t.Kind() == reflect.Map:
		d.decodeMap(n, v, path)
	default:
		s, ok := d.scalar(n, path, t)
		if !ok {
			return
		}
		d.setScalar(n, v, path, s)
	}
}

func (d *decoder) setScalar(n *yaml.Node, v reflect.Value, path, s string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.at(n.Line, path, "%q: expected true or false", s)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		x, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, v.Type().Bits())
		if err != nil {
			d.at(n.Line, path, "%q: expected a whole number", s)
			return
		}
		v.SetInt(x)
	case reflect.Float64, reflect.Float32:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.at(n.Line, path, "%q: expected a number", s)
			return
		}
		v.SetFloat(x)
	default:
		d.at(n.Line, path, "unsupported field type %s", v.Type())
	}
}

// scalar returns the env-expanded text of a scalar node.
func (d *decoder) scalar(n *yaml.Node, path string, t reflect.Type) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.at(n.Line, path, "expected %s, got %s", typeName(t), kindName(n))
		return "", false
	}
	s, err := expandEnv(n.Value, d.lookup)
	if err != nil {
		d.at(n.Line, path, "%s", err.Error())
		return "", false
	}
	return s, true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.at(n.Line, path, "expected a mapping of keys, got %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		fp := joinPath(path, key)
		idx, ok := fields.index[key]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", key)
			if s := closest(key, fields.names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.at(k.Line, fp, "%s", msg)
			continue
		}
		d.lines[fp] = k.Line
		d.decode(val, v.Field(idx), fp)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		d.at(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	if t.Key().Kind() != reflect.String {
		d.at(n.Line, path, "unsupported map type %s", t)
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		fp := joinPath(path, key)
		d.lines[fp] = k.Line
		e := reflect.New(t.Elem()).Elem()
		d.decode(val, e, fp)
		m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
	}
	v.Set(m)
}

// key checks one mapping key: a plain scalar, not a merge, not repeated.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]int) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.at(k.Line, path, "keys must be plain names, got %s", kindName(k))
		return "", false
	}
	if k.Tag == "!!merge" || k.Value == "<<" {
		d.at(k.Line, path, "merge keys (<<) are not supported")
		return "", false
	}
	if first, dup := seen[k.Value]; dup {
		d.at(k.Line, joinPath(path, k.Value), "duplicate key (first at line %d)", first)
		return "", false
	}
	seen[k.Value] = k.Line
	return k.Value, true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf maps the yaml tag names of t's fields to their index.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	sf := &structFields{index: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		sf.index[name] = i
		sf.names = append(sf.names, name)
	}
	fieldCache.Store(t, sf)
	return sf
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration (e.g. 90s, 12h, 400d)"
	case t == sizeType:
		return "a size (e.g. 500MB, 1GiB)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return "a single value"
}

// expandEnv replaces ${NAME} by the variable's value; $${ stands for a
// literal ${. A $ not followed by { is kept as is.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 2
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ (write $${ for a literal ${)")
		}
		name := s[i+2 : i+2+end]
		if !validEnvName(name) {
			return "", fmt.Errorf("${%s}: invalid environment variable name", name)
		}
		val, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(val)
		i += 2 + end
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// closest returns the candidate within edit distance 2 of s, if any.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

package config

import (
	"bytes"
	_ "embed"
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

	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultFile is the name the embedded default has in error messages.
const DefaultFile = "(embedded default.yaml)"

// EnvConfig names the config file when --config is not given.
const EnvConfig = "TOLLGATE_CONFIG"

// maxFileSize bounds what Load reads: a config file is a few kilobytes.
const maxFileSize = 4 << 20

// DefaultYAML returns the embedded default configuration file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// rawDefault is the embedded default as written, before Normalize; it is
// where Normalize takes its defaults from, so default.yaml is the one
// source of them.
var rawDefault = sync.OnceValue(func() *Config {
	c, _, err := decode(defaultYAML, DefaultFile)
	if err != nil {
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
})

// Load reads the config file at path; when path is "" it reads the file
// named by $TOLLGATE_CONFIG, and when that is unset too it returns
// Default(). The result is normalised and validated.
func Load(path string) (*Config, error) {
	if path == "" {
		path = os.Getenv(EnvConfig)
	}
	if path == "" {
		return Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{File: path, Problems: []Problem{{Msg: fmt.Sprintf("file larger than %d bytes; is this the right file?", maxFileSize)}}}
	}
	return Parse(data, path)
}

// Default returns the embedded default configuration (config/default.yaml),
// normalised. Each call returns a new Config that the caller may change.
func Default() *Config {
	c, err := Parse(defaultYAML, DefaultFile)
	if err != nil {
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
}

// Parse decodes a config file, fills defaults (Normalize) and validates it.
// name is used in error messages. An unknown key, a value of the wrong type
// or an invalid value is an *Error (matching ErrInvalid) naming the line.
func Parse(data []byte, name string) (*Config, error) {
	c, root, err := decode(data, name)
	if err != nil {
		return nil, err
	}
	// mode: with no value would silently mean private, the mode that sends
	// credentials upstream: on a shared pool that is the mistake to stop.
	if n, exact := lookup(root, "mode"); exact && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, &Error{File: name, Problems: []Problem{{Line: n.Line,
			Msg: `mode: has no value; write mode: private or mode: public, or remove the key for the default (private)`}}}
	}
	if n, exact := lookup(root, "allowlist"); exact && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, &Error{File: name, Problems: []Problem{{Line: n.Line,
			Msg: "allowlist: has no entries; list patterns, write allowlist: [] to deny every pull, or remove the key for the default list"}}}
	}
	c.Normalize()
	var fes []FieldError
	for _, v := range validators {
		fes = append(fes, v(c)...)
	}
	if len(fes) == 0 {
		return c, nil
	}
	e := &Error{File: name}
	for _, fe := range fes {
		line := 0
		if n, _ := lookup(root, fe.Path...); n != nil {
			line = n.Line
		}
		e.Problems = append(e.Problems, Problem{Line: line, Msg: fe.Msg})
	}
	return nil, e
}

// Normalize fills every unset value with its default, taken from the
// embedded default.yaml (mode private, the default allowlist, proxy listen
// 127.0.0.1:5000, cache maxsize 50GiB, shutdown timeout 30s, ECR refresh
// margin 1h, log level info and format text), and sets Proxy.Cache.Dir to
// $XDG_CACHE_HOME/tollgate/proxy (~/.cache/tollgate/proxy) when empty. A nil
// Allowlist gets the default list; an empty, non-nil one stays empty (deny
// everything). Normalize is idempotent.
func (c *Config) Normalize() {
	d := rawDefault()
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Allowlist == nil {
		c.Allowlist = append([]string(nil), d.Allowlist...)
	}
	if c.Proxy.Listen == "" {
		c.Proxy.Listen = d.Proxy.Listen
	}
	if c.Proxy.Cache.Dir == "" {
		c.Proxy.Cache.Dir = d.Proxy.Cache.Dir
	}
	if c.Proxy.Cache.Dir == "" {
		if dir := userCacheDir(); dir != "" {
			c.Proxy.Cache.Dir = filepath.Join(dir, "tollgate", "proxy")
		}
	}
	if c.Proxy.Cache.MaxSize == "" {
		c.Proxy.Cache.MaxSize = d.Proxy.Cache.MaxSize
	}
	if c.Proxy.ShutdownTimeout == 0 {
		c.Proxy.ShutdownTimeout = d.Proxy.ShutdownTimeout
	}
	c.Proxy.Fleet.normalize()
	if c.ECR.RefreshMargin == 0 {
		c.ECR.RefreshMargin = d.ECR.RefreshMargin
	}
	if c.ECR.CacheDir == "" {
		c.ECR.CacheDir = d.ECR.CacheDir
	}
	c.Authz.normalize(d.Authz)
	if c.Log.Level == "" {
		c.Log.Level = d.Log.Level
	}
	if c.Log.Format == "" {
		c.Log.Format = d.Log.Format
	}
}

// userCacheDir is $XDG_CACHE_HOME when it is an absolute path (the XDG
// spec says to ignore a relative one), else ~/.cache; "" when neither is
// known, which the consumer reports.
func userCacheDir() string {
	if dir := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(dir) {
		return dir
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".cache")
	}
	return ""
}

// Compiled on first use: the credential helper links this package, and its
// warm path must not pay for regexps it only needs on a broken file.
var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`) })

// decode parses data into a Config without defaults, checking for unknown
// keys itself (to name the key's section and suggest a spelling) and then
// with the decoder's KnownFields as a backstop. It returns the node tree
// for locating values.
func decode(data []byte, name string) (*Config, *yaml.Node, error) {
	c := new(Config)
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil, nil // empty file: all defaults
		}
		return nil, nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := 0
		if err == nil {
			line = extra.Line
		}
		return nil, nil, &Error{File: name, Problems: []Problem{{Line: line, Msg: "more than one YAML document ('---'); a config file holds one"}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return c, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, &Error{File: name, Problems: []Problem{{Line: root.Line,
			Msg: "the top level must be a mapping of keys (mode:, allowlist:, proxy:, ...)"}}}
	}
	if ps := (keyChecker{}).check(root, reflect.TypeOf(Config{}), "", 0); len(ps) > 0 {
		return nil, nil, &Error{File: name, Problems: ps}
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(c); err != nil {
		return nil, nil, yamlError(name, err)
	}
	return c, root, nil
}

// yamlError turns the decoder's errors into file:line problems.
func yamlError(name string, err error) error {
	e := &Error{File: name}
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		p := Problem{Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine().FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Msg = friendlier(sm[2])
		}
		e.Problems = append(e.Problems, p)
	}
	return e
}

var cannotUnmarshal = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.*)$")
})

// friendlier rewrites the decoder's type errors in the config's terms.
func friendlier(msg string) string {
	sm := cannotUnmarshal().FindStringSubmatch(msg)
	if sm == nil {
		return msg
	}
	kind, val, into := sm[1], sm[2], sm[3]
	switch {
	case into == "time.Duration":
		return fmt.Sprintf("invalid duration %q: write a number with a unit, e.g. 30s, 5m or 1h", val)
	case strings.HasPrefix(into, "[]"):
		return fmt.Sprintf("expected a list, found %s %q", kind, val)
	case strings.HasPrefix(into, "map[") || strings.HasPrefix(into, "config.") || strings.HasPrefix(into, "*config."):
		if kind == "seq" || kind == "map" {
			return fmt.Sprintf("expected a mapping of keys, found a %s", kind)
		}
		return fmt.Sprintf("expected a mapping of keys, found %s %q", kind, val)
	case into == "string" || into == "config.Mode":
		return fmt.Sprintf("expected a string, found a %s", kind)
	}
	return fmt.Sprintf("invalid value %q: expected %s", val, into)
}

// keyChecker remembers the (node, type) pairs it has checked. Aliases and
// merge keys let one node be reached along many paths (a few nested,
// repeated merges spell billions), and checking it once per type says all
// there is to say about it.
type keyChecker map[nodeType]bool

type nodeType struct {
	n *yaml.Node
	t reflect.Type
}

// check reports every mapping key under n that t has no field for,
// recursing through structs, pointers, slices and maps of them.
func (kc keyChecker) check(n *yaml.Node, t reflect.Type, path string, depth int) []Problem {
	if n == nil || depth > 32 {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return kc.check(n.Alias, t, path, depth+1)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if kc[nodeType{n, t}] {
		return nil
	}
	kc[nodeType{n, t}] = true
	var ps []Problem
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t.PkgPath() != reflect.TypeOf(Config{}).PkgPath() {
			return nil // a type error, which the decoder reports
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: its mapping has the same type
				ps = append(ps, kc.check(v, t, path, depth+1)...)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				ps = append(ps, Problem{Line: k.Line, Msg: unknownKey(k.Value, path, fields)})
				continue
			}
			ps = append(ps, kc.check(v, ft, join(path, k.Value), depth+1)...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode || t.Elem().Kind() == reflect.Interface {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			ps = append(ps, kc.check(n.Content[i+1], t.Elem(), join(path, strconv.Quote(n.Content[i].Value)), depth+1)...)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			ps = append(ps, kc.check(item, t.Elem(), join(path, strconv.Itoa(i)), depth+1)...)
		}
	}
	return ps
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func unknownKey(key, path string, fields map[string]reflect.Type) string {
	msg := fmt.Sprintf("unknown key %q", key)
	if path != "" {
		msg += " in " + path
	}
	// Suggest a key one edit away, or two for longer keys.
	best, bestD := "", 0
	for f := range fields {
		limit := 1
		if max(len(key), len(f)) > 4 {
			limit = 2
		}
		d := editDistance(strings.ToLower(key), f)
		if d <= limit && (best == "" || d < bestD || d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	} else {
		names := make([]string, 0, len(fields))
		for f := range fields {
			names = append(names, f)
		}
		sortStrings(names)
		msg += "; known keys: " + strings.Join(names, ", ")
	}
	return msg
}

// lookup finds the node of a key path (mapping keys and list indexes),
// or the deepest node on the way (exact false) when the path goes further
// than the file.
func lookup(root *yaml.Node, path ...string) (n *yaml.Node, exact bool) {
	n = root
	for _, p := range path {
		for n != nil && n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n == nil {
			return nil, false
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return n, false
		}
		n = next
	}
	return n, n != nil
}

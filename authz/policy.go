package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/allowlist"
	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/internal/oneline"
)

// Rules named in decisions.
const (
	// RuleAllowlist: the reference is checked against the allowlist.
	RuleAllowlist = "allowlist"
	// RulePublic: in public mode the daemon pulls only through the proxy.
	RulePublic = "mode: public"
	// RuleRequest: the request cannot be read or is ambiguous.
	RuleRequest = "request"
)

// Policy decides the daemon's requests: the allowlist for every image
// reference the daemon would fetch, public mode's "only through the
// proxy", and the authz.* settings for what it cannot check image by image.
type Policy struct {
	allow  *allowlist.Policy
	public bool
	// proxy is the canonical host:port of the tollgate proxy.
	proxy string
	gates map[gate]bool
}

// Options are a Policy's inputs; NewPolicy takes them from a Config.
type Options struct {
	Allowlist *allowlist.Policy
	Public    bool
	// Proxy is the host:port of the tollgate proxy as image references
	// name it; "" when there is none (public mode then refuses every pull).
	Proxy string
	// Build, Load, Import, Login and LocalImages let those requests
	// through; false refuses them.
	Build, Load, Import, Login, LocalImages bool
}

// NewPolicy builds the policy of a loaded config: its allowlist, mode,
// proxy address (config.ProxyAddr) and authz gates.
func NewPolicy(cfg *config.Config) (*Policy, error) {
	al, err := allowlist.New(cfg.Allowlist)
	if err != nil {
		return nil, err
	}
	public := cfg.Mode == config.ModePublic
	proxy, err := cfg.ProxyAddr()
	if err != nil {
		if public {
			return nil, fmt.Errorf("mode: public needs the tollgate proxy's address, the only registry the daemon may pull from: %w; set authz.proxy to host:port", err)
		}
		proxy = "" // private mode: references are checked as they are
	}
	a := cfg.Authz
	return New(Options{
		Allowlist: al, Public: public, Proxy: proxy,
		Build: a.Build.Allows(false), Load: a.Load.Allows(false), Import: a.Import.Allows(false),
		Login: a.Login.Allows(!public), LocalImages: a.LocalImages.Allows(false),
	})
}

// New builds a policy from options.
func New(o Options) (*Policy, error) {
	p := &Policy{allow: o.Allowlist, public: o.Public}
	if o.Proxy != "" {
		canon, err := allowlist.CanonicalHost(o.Proxy)
		if err != nil {
			return nil, fmt.Errorf("proxy address %q: %w", o.Proxy, err)
		}
		p.proxy = canon
	}
	p.gates = map[gate]bool{gateBuild: o.Build, gateLoad: o.Load, gateImport: o.Import, gateLogin: o.Login, gateLocalImages: o.LocalImages}
	return p, nil
}

// Decision is the answer to one daemon request.
type Decision struct {
	Allowed bool
	// What the request is: "image pull", "container create", ...
	// ("" for a request no rule is about).
	What string
	// Rule that decided: RuleAllowlist, RulePublic, RuleRequest or
	// "authz.KEY"; "" when no rule applies.
	Rule string
	// Reference is the normalised image reference checked, if any.
	Reference string
	// Reason says why, and for a refusal what to change.
	Reason string
}

// Message is the text the docker CLI prints after "authorization denied by
// plugin NAME: ".
func (d Decision) Message() string {
	var b strings.Builder
	b.WriteString(d.What)
	if d.Reference != "" {
		b.WriteString(" of ")
		b.WriteString(d.Reference)
	}
	fmt.Fprintf(&b, " refused by rule %q: %s", d.Rule, d.Reason)
	return b.String()
}

func (d Decision) attrs() []any {
	a := []any{slog.String("what", d.What), slog.String("rule", d.Rule)}
	if d.Reference != "" {
		a = append(a, slog.String("reference", d.Reference))
	}
	return append(a, slog.String("reason", d.Reason))
}

// Authorize decides one daemon request. It never calls the network.
func (p *Policy) Authorize(r *Request) Decision {
	c, err := Decode(r)
	if err != nil {
		return Decision{What: "request", Rule: RuleRequest, Reason: oneline.Cut(err.Error())}
	}
	return p.Decide(c)
}

// Decide decides a decoded request.
func (p *Policy) Decide(c *Call) Decision {
	e := match(c)
	if e == nil {
		return Decision{Allowed: true, Reason: "fetches nothing from a registry"}
	}
	refuse := func(format string, args ...any) Decision {
		return Decision{What: e.name, Rule: RuleRequest, Reason: fmt.Sprintf(format, args...)}
	}
	switch e.kind {
	case kindGate:
		return p.gate(e.name, e.gate, e.why)

	case kindImagesCreate:
		// A form body would hide fromImage (import included: its body is
		// the tarball, never a form).
		if c.formBody() {
			return refuse("%s", formWhy)
		}
		from, err := c.param("fromImage")
		if err != nil {
			return refuse("%v", err)
		}
		if from == "" {
			return p.gate("image import", gateImport, importWhy)
		}
		if why := c.hiddenBody(); why != "" {
			return refuse("%s", why)
		}
		tag, err := c.param("tag")
		if err != nil {
			return refuse("%v", err)
		}
		return p.pull(e.name, from, tag)

	case kindQueryRef:
		if why := c.hiddenBody(); why != "" {
			return refuse("%s", why)
		}
		ref, err := c.param(e.param)
		if err != nil {
			return refuse("%v", err)
		}
		if ref == "" {
			return refuse("no image named in the %s parameter", e.param)
		}
		return p.pull(e.name, ref, "")

	case kindPathRef:
		m := e.path.FindStringSubmatch(c.Path)
		return p.pull(e.name, m[1], "")

	case kindContainerCreate:
		img, err := containerImage(c.Body)
		if err != nil {
			return refuse("%v", err)
		}
		return p.create(e.name, img)

	case kindService:
		img, err := serviceImage(c.Body)
		if err != nil {
			return refuse("%v", err)
		}
		return p.pull(e.name, img, "")
	}
	return refuse("no rule for this request") // unreachable: every kind is handled
}

func (p *Policy) gate(what string, g gate, why string) Decision {
	key := "authz." + string(g)
	if p.gates[g] {
		return Decision{Allowed: true, What: what, Rule: key, Reason: key + " is allow"}
	}
	return Decision{What: what, Rule: key, Reason: fmt.Sprintf("%s; set %s: allow in the tollgate config to let it through", why, key)}
}

// pull decides a request that makes the daemon fetch image name (with the
// separate tag or digest of images/create's tag parameter, as the daemon
// combines them).
func (p *Policy) pull(what, name, tag string) Decision {
	if hasUserInfo(name) {
		// Refused without repeating the reference, which would put what
		// may be a password into the log and the CLI's output.
		return Decision{What: what, Rule: RuleAllowlist, Reason: "the image reference names credentials (user:password@host), which references never carry; log in with docker login instead (the reference is not repeated here)"}
	}
	ref, err := combine(name, tag)
	if err != nil {
		return Decision{What: what, Rule: RuleAllowlist, Reason: err.Error()}
	}
	return p.reference(what, ref)
}

// create decides a container's image: an image ID is an image already on
// the host; a name is checked like a pull (the CLI pulls it under that name
// when it is missing, and a name the host already has must be one this
// policy allows).
func (p *Policy) create(what, img string) Decision {
	if isImageID(img) {
		d := p.gate(what, gateLocalImages, localWhy)
		d.Reference = oneline.Quote(img)
		return d
	}
	return p.pull(what, img, "")
}

// reference checks a full reference string: through the proxy, the
// upstream reference it names; otherwise, in public mode, refused; else the
// allowlist's verdict.
func (p *Policy) reference(what, ref string) Decision {
	v := p.allow.Check(ref)
	if v.Host == "" { // did not parse
		return Decision{What: what, Rule: RuleAllowlist, Reason: v.Reason}
	}
	if p.proxy != "" && v.Host == p.proxy {
		return p.throughProxy(what, v)
	}
	d := Decision{Allowed: v.Allowed, What: what, Rule: RuleAllowlist, Reference: v.Reference, Reason: v.Reason}
	if !v.Allowed || !p.public {
		return d
	}
	d.Allowed, d.Rule = false, RulePublic
	if p.proxy == "" {
		d.Reason = "this is a shared (public) host: the daemon may pull only through the tollgate proxy, and no proxy address is configured; set authz.proxy (or proxy.listen) in the tollgate config"
		return d
	}
	d.Reason = fmt.Sprintf("this is a shared (public) host: the daemon pulls only through the tollgate proxy at %s, which never sends credentials upstream; use %s/%s instead", p.proxy, p.proxy, v.Reference)
	return d
}

// throughProxy decides a reference to the tollgate proxy by the upstream
// reference its path names, routed as the proxy routes it: a first path
// component with a '.' or ':' (or "localhost") is the registry host, else
// the repository is on Docker Hub.
func (p *Policy) throughProxy(what string, v allowlist.Verdict) Decision {
	suffix := strings.TrimPrefix(v.Reference, v.Host+"/"+v.Repository)
	inner := v.Repository
	if !strings.Contains(inner, "/") && (strings.ContainsAny(inner, ".:") || inner == "localhost") {
		return Decision{What: what, Rule: RuleAllowlist, Reference: v.Reference,
			Reason: fmt.Sprintf("%s names registry host %s on the tollgate proxy but no repository; write %s/%s/REPOSITORY", v.Reference, inner, p.proxy, inner)}
	}
	u := p.allow.Check(inner + suffix)
	d := Decision{Allowed: u.Allowed, What: what, Rule: RuleAllowlist, Reference: v.Reference, Reason: u.Reason}
	if u.Host != "" {
		d.Reference = v.Reference + " (" + u.Reference + " through the tollgate proxy)"
	}
	return d
}

// combine joins images/create's fromImage and tag as the daemon does: a
// tag that parses as a digest pins the name to it, any other tag replaces
// the name's tag.
func combine(name, tag string) (string, error) {
	if tag == "" {
		return name, nil
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %s: %s", oneline.Quote(name), oneline.Cut(err.Error()))
	}
	if d, err := digest.Parse(tag); err == nil {
		r, err := reference.WithDigest(reference.TrimNamed(named), d)
		if err != nil {
			return "", fmt.Errorf("invalid digest %s: %s", oneline.Quote(tag), oneline.Cut(err.Error()))
		}
		return r.String(), nil
	}
	r, err := reference.WithTag(named, tag)
	if err != nil {
		return "", fmt.Errorf("invalid tag %s: %s", oneline.Quote(tag), oneline.Cut(err.Error()))
	}
	return r.String(), nil
}

// hasUserInfo reports whether name starts with URL-style user-info
// (user:password@host/...), as opposed to a digest (name@sha256:...).
func hasUserInfo(name string) bool {
	at := strings.IndexByte(name, '@')
	if at < 0 {
		return false
	}
	if slash := strings.IndexByte(name, '/'); slash >= 0 {
		return at < slash
	}
	_, err := digest.Parse(name[at+1:])
	return err != nil && strings.Contains(name[:at], ":")
}

// isImageID reports whether img names an image by ID, as the daemon reads
// it: 64 hex digits, or a digest (sha256:...).
func isImageID(img string) bool {
	if len(img) == 64 && strings.Trim(img, "0123456789abcdef") == "" {
		return true
	}
	_, err := digest.Parse(img)
	return err == nil
}

// containerImage returns the Image of a containers/create body, read as
// the daemon reads it (encoding/json: keys matched without regard to case),
// refusing what it cannot see or what is ambiguous: two keys that differ
// only in case, of which a reader could take either.
func containerImage(body []byte) (string, error) {
	if len(body) == 0 {
		return "", errors.New("the daemon did not pass the request body to the plugin (it does so only for Content-Type application/json up to 1 MiB), so the image cannot be checked; send the body as JSON")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return "", fmt.Errorf("the request body is not a valid container config: %s", oneline.Cut(err.Error()))
	}
	var raw json.RawMessage
	n := 0
	for k, v := range top {
		if strings.EqualFold(k, "Image") {
			raw, n = v, n+1
		}
	}
	if n > 1 {
		return "", fmt.Errorf("the request body has %d \"Image\" keys differing in case; send one", n)
	}
	var img string
	if raw != nil {
		if err := json.Unmarshal(raw, &img); err != nil {
			return "", fmt.Errorf("the request body is not a valid container config: Image: %s", oneline.Cut(err.Error()))
		}
	}
	if img == "" {
		return "", errors.New("the request body names no image")
	}
	return img, nil
}

// serviceImage returns TaskTemplate.ContainerSpec.Image of a swarm service
// spec.
func serviceImage(body []byte) (string, error) {
	if len(body) == 0 {
		return "", errors.New("the daemon did not pass the request body to the plugin (it does so only for Content-Type application/json up to 1 MiB), so the image cannot be checked; send the body as JSON")
	}
	var spec struct {
		TaskTemplate struct {
			ContainerSpec *struct{ Image string }
		}
	}
	if err := json.Unmarshal(body, &spec); err != nil {
		return "", fmt.Errorf("the request body is not a valid service spec: %s", oneline.Cut(err.Error()))
	}
	if spec.TaskTemplate.ContainerSpec == nil || spec.TaskTemplate.ContainerSpec.Image == "" {
		return "", errors.New("the service spec names no container image the plugin can check")
	}
	return spec.TaskTemplate.ContainerSpec.Image, nil
}

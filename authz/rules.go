package authz

import "regexp"

// kind says how an endpoint's request is checked.
type kind int

const (
	// kindImagesCreate is POST /images/create: a pull when fromImage is
	// set (with tag), else an import (fromSrc).
	kindImagesCreate kind = iota + 1
	// kindQueryRef names the image reference the daemon fetches in a query
	// parameter (plugin pulls).
	kindQueryRef
	// kindPathRef names it in the path (/distribution/NAME/json).
	kindPathRef
	// kindContainerCreate has the image in the JSON body's Image.
	kindContainerCreate
	// kindService has it in TaskTemplate.ContainerSpec.Image (every swarm
	// node pulls it).
	kindService
	// kindGate is decided by an authz.* setting alone.
	kindGate
)

// gate names an authz.* setting.
type gate string

const (
	gateBuild       gate = "build"
	gateLoad        gate = "load"
	gateImport      gate = "import"
	gateLogin       gate = "login"
	gateLocalImages gate = "local_images"
)

// endpoint is one row of the rules table: a daemon route and what it
// means for the policy.
type endpoint struct {
	// name says what the request is, in messages, logs and metrics.
	name   string
	method string // "" for any method
	path   *regexp.Regexp
	kind   kind
	// param is the query parameter holding the reference (kindQueryRef).
	param string
	gate  gate
	// why says, for a gate, what the plugin cannot see.
	why string
}

// endpoints is what each daemon API route means for the policy, matched on
// the decoded, cleaned path without the version prefix. A route that is in
// no row fetches nothing from a registry and is allowed.
var endpoints = []endpoint{
	{name: "image pull", method: "POST", path: route(`/images/create`), kind: kindImagesCreate},
	{name: "container create", method: "POST", path: route(`/containers/create`), kind: kindContainerCreate},
	{name: "plugin pull", method: "POST", path: route(`/plugins/pull`), kind: kindQueryRef, param: "remote"},
	{name: "plugin privileges lookup", method: "GET", path: route(`/plugins/privileges`), kind: kindQueryRef, param: "remote"},
	{name: "plugin upgrade", method: "POST", path: route(`/plugins/.+/upgrade`), kind: kindQueryRef, param: "remote"},
	{name: "distribution lookup", method: "GET", path: route(`/distribution/(.+)/json`), kind: kindPathRef},
	{name: "service create", method: "POST", path: route(`/services/create`), kind: kindService},
	{name: "service update", method: "POST", path: route(`/services/[^/]+/update`), kind: kindService},
	{name: "docker build", method: "POST", path: route(`/build`), kind: kindGate, gate: gateBuild,
		why: "the daemon fetches a build's base images itself (FROM lines inside the build context, remote contexts), where the plugin cannot check them"},
	{name: "BuildKit session", method: "POST", path: route(`/session`), kind: kindGate, gate: gateBuild,
		why: "BuildKit fetches a build's base images inside the daemon, with the client's credentials, where the plugin cannot check them"},
	{name: "BuildKit gRPC", path: route(`/grpc`), kind: kindGate, gate: gateBuild,
		why: "BuildKit fetches a build's base images inside the daemon, with the client's credentials, where the plugin cannot check them"},
	{name: "image load", method: "POST", path: route(`/images/load`), kind: kindGate, gate: gateLoad,
		why: "an image tarball may hold any image from any registry, private ones included"},
	{name: "plugin create", method: "POST", path: route(`/plugins/create`), kind: kindGate, gate: gateLoad,
		why: "a plugin tarball may hold any image from any registry, private ones included"},
	{name: "registry login", method: "POST", path: route(`/auth`), kind: kindGate, gate: gateLogin,
		why: "on a shared (public) host no registry credentials are used: pulls go through the tollgate proxy, which sends none upstream"},
	{name: "image tag", method: "POST", path: route(`/images/.+/tag`), kind: kindGate, gate: gateLocalImages,
		why: "a new name for an image already on the host would let it pass as an allowed reference"},
}

// importWhy is why an import (images/create without fromImage) is gated.
const importWhy = "the daemon reads the image from a tarball or fetches it from a URL, and either may hold anything"

// localWhy is why a container from an image ID is gated.
const localWhy = "an image ID names an image already on the host, which the plugin cannot trace to an allowed pull"

func route(p string) *regexp.Regexp { return regexp.MustCompile(`^` + p + `$`) }

// match returns the row for a call, or nil.
func match(c *Call) *endpoint {
	for i := range endpoints {
		e := &endpoints[i]
		if (e.method == "" || e.method == c.Method) && e.path.MatchString(c.Path) {
			return e
		}
	}
	return nil
}

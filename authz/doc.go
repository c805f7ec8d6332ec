// Package authz is tollgate's Docker engine authorization plugin: the
// daemon (started with --authorization-plugin NAME, or
// "authorization-plugins" in daemon.json) asks it about every API request
// over a unix socket, /run/docker/plugins/NAME.sock, and refuses what it
// refuses, printing the plugin's message in the docker CLI.
//
// # Protocol
//
// The plugin API is JSON over HTTP POST: /Plugin.Activate answers
// {"Implements":["authz"]}; /AuthZPlugin.AuthZReq gets the request
// (method, RequestUri, headers, and the body when it is JSON: up to 1 MiB
// on Docker 20.10, 4 MiB on 29) and answers {"Allow":bool,"Msg":string};
// /AuthZPlugin.AuthZRes gets the response too and is always allowed. The daemon never passes the
// Authorization, X-Registry-Auth or X-Registry-Config headers, so the
// plugin cannot tell whether a pull would use credentials. Handler serves
// the protocol, Listen and Serve run it on the socket.
//
// # Decoding
//
// Decode reads a request as the daemon routes it: absolute or origin-form
// URI, the path percent-decoded and cleaned, the /vN.NN prefix split off,
// the query parsed (a decisive parameter given twice is refused, as is a
// query that does not parse). The daemon reads form parameters from a
// request body when its Content-Type is a form, but forwards only JSON
// bodies: a pull whose body the plugin did not see is refused (hiddenBody).
//
// # Policy
//
// One table (rules.go) says what each route means. Requests that make the
// daemon fetch an image name it: images/create's fromImage+tag (combined
// as the daemon combines them), plugins/pull, plugins/privileges and plugin
// upgrades' remote, /distribution/NAME/json, containers/create's Image
// (the CLI pulls a missing image under that name, and a name already on
// the host is checked the same way), and swarm services' image. Each is
// normalised and checked by the allowlist package exactly as `tollgate
// check` checks it. A reference to the tollgate proxy (authz.proxy, by
// default proxy.listen: 127.0.0.1:5000/ghcr.io/org/app) is checked as the
// upstream reference the proxy routes it to. In public mode every other
// registry is refused: the proxy never sends credentials upstream, so the
// daemon only ever holds public images.
//
// What the plugin cannot check image by image has a setting each
// (authz.build for classic builds and BuildKit, authz.load for image and
// plugin tarballs, authz.import, authz.local_images for image IDs and
// docker tag, authz.login for POST /auth), refused unless set to allow
// (login: allowed in private mode unless set to deny). Every other route
// fetches nothing from a registry and is allowed.
//
// Every refusal names the rule and the fix, is logged (log/slog, never
// with the request's body or query, which may hold build arguments or, for
// POST /auth, a password) and counted (Metrics). Deciding never touches
// the network.
package authz

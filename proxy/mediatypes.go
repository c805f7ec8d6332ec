package proxy

import (
	"bytes"
	"encoding/json"
	"mime"
	"strings"
)

// modernAccept is added to every upstream manifest request after what the
// client asked for. A registry that has only a Docker schema 2 manifest and
// is asked for OCI types alone would otherwise convert it to signed schema 1
// (whose digest is not the content's); registries answer with the manifest
// as stored, and the client gets it with its real Content-Type, as Docker Hub
// and distribution serve content they have in no other form.
//
// The Docker manifest list is the exception: a registry does have another
// form of it for a client that names manifest types but no index type (the
// linux/amd64 image manifest, which distribution and Docker Hub pick), so it
// is added only for a client that accepts indexes or names no manifest type
// at all.
var modernAccept = []string{
	mediaTypeOCIIndex,
	"application/vnd.oci.image.manifest.v1+json",
	mediaTypeDockerList,
	"application/vnd.docker.distribution.manifest.v2+json",
}

const (
	mediaTypeOCIIndex   = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestTypes are the manifest and index media types a client may name.
var manifestTypes = map[string]bool{
	mediaTypeOCIIndex:                                           true,
	mediaTypeDockerList:                                         true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.v1+json":      true,
	"application/vnd.docker.distribution.manifest.v1+prettyjws": true,
	"application/vnd.oci.artifact.manifest.v1+json":             true,
}

// upstreamAccept is the client's Accept list (passed through, in its order)
// followed by the modern manifest types it did not name.
func upstreamAccept(client []string) []string {
	out := make([]string, 0, len(client)+len(modernAccept))
	seen := map[string]bool{}
	for _, v := range client {
		for _, part := range strings.Split(v, ",") {
			mt := strings.TrimSpace(part)
			base, _, _ := strings.Cut(mt, ";")
			base = strings.TrimSpace(base)
			if base == "" || seen[base] {
				continue
			}
			seen[base] = true
			out = append(out, mt)
		}
	}
	namesManifest := false
	for base := range seen {
		namesManifest = namesManifest || manifestTypes[base]
	}
	namesIndex := seen[mediaTypeOCIIndex] || seen[mediaTypeDockerList]
	for _, mt := range modernAccept {
		if seen[mt] || (mt == mediaTypeDockerList && namesManifest && !namesIndex) {
			continue
		}
		out = append(out, mt)
	}
	return out
}

// acceptable reports whether a cached manifest of mediaType may answer a
// request sent upstream with accept (an upstreamAccept list). Only an index
// can be wrong: a registry gives a client that does not accept it the
// platform's image manifest instead. Other types are served whatever the
// Accept, as registries serve content they have in no other form.
func acceptable(mediaType string, accept []string) bool {
	if mediaType != mediaTypeOCIIndex && mediaType != mediaTypeDockerList {
		return true
	}
	for _, a := range accept {
		base, _, _ := strings.Cut(a, ";")
		base = strings.TrimSpace(base)
		if base == mediaType || base == "*/*" {
			return true
		}
	}
	return false
}

// isJSONObject reports whether data is one JSON object, as every manifest
// and index (and Docker's signed schema 1) is.
func isJSONObject(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

// signedSchema1 recognises Docker's signed schema 1 manifest, by its
// Content-Type or by the "signatures" a schema 1 body carries.
func signedSchema1(contentType string, data []byte) bool {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/vnd.docker.distribution.manifest.v1+prettyjws" {
		return true
	}
	if !bytes.Contains(data, []byte(`"signatures"`)) {
		return false
	}
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		Signatures    []json.RawMessage `json:"signatures"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.SchemaVersion == 1 && len(probe.Signatures) > 0
}

// mediaTypeOf takes the upstream's Content-Type, or the manifest's own
// mediaType field when the header says nothing useful.
func mediaTypeOf(contentType string, data []byte) string {
	if mt := declaredMediaType(contentType); mt != "" {
		return mt
	}
	if data != nil {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		if json.NewDecoder(bytes.NewReader(data)).Decode(&probe) == nil && probe.MediaType != "" {
			return probe.MediaType
		}
	}
	if contentType != "" {
		return contentType
	}
	return "application/vnd.oci.image.manifest.v1+json"
}

// declaredMediaType is the media type a Content-Type header names, or ""
// when it names none that says what a manifest is.
func declaredMediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && mt != "" && mt != "application/octet-stream" && mt != "text/plain" {
		return mt
	}
	return ""
}

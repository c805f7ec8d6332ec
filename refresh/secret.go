package refresh

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// SecretType is the Kubernetes Secret type of an image pull secret.
const SecretType = "kubernetes.io/dockerconfigjson"

// SecretKey is the data key holding the docker config.
const SecretKey = ".dockerconfigjson"

// ExpiresAnnotation records when the earliest token written by the last
// refresh expires.
const ExpiresAnnotation = "tollgate.spacelift.io/expires-at"

// Secret is the manifest of a Kubernetes Secret, as much as tollgate reads
// and writes.
type Secret struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   SecretMeta        `yaml:"metadata"`
	Type       string            `yaml:"type"`
	Data       map[string]string `yaml:"data,omitempty"`
	StringData map[string]string `yaml:"stringData,omitempty"`
}

// SecretMeta is a Secret's metadata.
type SecretMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// ValidateSecretName checks name and namespace as Kubernetes does (a DNS
// subdomain of at most 253 characters; a DNS label of at most 63).
func ValidateSecretName(name, namespace string) error {
	if name == "" || len(name) > 253 || !dnsSubdomain.MatchString(name) {
		return fmt.Errorf("secret name %q is not a valid Kubernetes name (lower-case letters, digits, '-' and '.', at most 253)", name)
	}
	if namespace != "" && (len(namespace) > 63 || !dnsLabel.MatchString(namespace)) {
		return fmt.Errorf("namespace %q is not a valid Kubernetes namespace (lower-case letters, digits and '-', at most 63)", namespace)
	}
	return nil
}

// KubernetesSecret writes tokens as a kubernetes.io/dockerconfigjson Secret
// manifest, to Path, or to Out when Path is "". When Path already holds
// such a Secret (e.g. from `kubectl get secret -o yaml`), its docker config
// is the starting point: entries of registries that were not refreshed are
// kept, and so are its labels and annotations (but for kubectl's
// last-applied-configuration, which holds the old docker config), and its
// namespace when Namespace is "". Fields the API server sets (uid,
// resourceVersion, ...) are not written.
type KubernetesSecret struct {
	Name, Namespace string
	Path            string
	Out             io.Writer
}

func (k KubernetesSecret) String() string {
	if k.Path == "" {
		return "standard output"
	}
	return k.Path
}

// ParseSecret parses a Secret manifest (YAML or JSON) of type
// kubernetes.io/dockerconfigjson and returns its docker config.
func ParseSecret(name string, data []byte) (*Secret, *dockerconfig.File, error) {
	var s Secret
	if err := yaml.Unmarshal(data, &s); err != nil {
		return nil, nil, fmt.Errorf("%s: not a Kubernetes manifest: %w", name, err)
	}
	if s.Kind != "Secret" || s.Type != SecretType {
		return nil, nil, fmt.Errorf("%s: kind %q type %q, want a Secret of type %s", name, s.Kind, s.Type, SecretType)
	}
	var cfg []byte
	if v, ok := s.StringData[SecretKey]; ok {
		cfg = []byte(v)
	} else if v, ok := s.Data[SecretKey]; ok {
		var err error
		if cfg, err = base64.StdEncoding.DecodeString(v); err != nil {
			return nil, nil, fmt.Errorf("%s: data.%s is not base64", name, SecretKey)
		}
	}
	f, err := dockerconfig.Parse(name+": "+SecretKey, cfg)
	if err != nil {
		return nil, nil, err
	}
	return &s, f, nil
}

// lastApplied is the annotation `kubectl apply` (client-side) keeps the
// whole previous manifest in: for a Secret, its old data.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// existing returns the Secret at Path (nil when there is none yet) and its
// docker config (empty when there is none).
func (k KubernetesSecret) existing() (*Secret, *dockerconfig.File, error) {
	if k.Path == "" {
		f, err := dockerconfig.Parse("secret", nil)
		return nil, f, err
	}
	data, err := os.ReadFile(k.Path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(bytes.TrimSpace(data)) == 0) {
		f, err := dockerconfig.Parse(k.Path, nil)
		return nil, f, err
	}
	if err != nil {
		return nil, nil, err
	}
	s, f, err := ParseSecret(k.Path, data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; refusing to overwrite it: move it away or name another --output", err)
	}
	return s, f, nil
}

var (
	_ Sink       = KubernetesSecret{}
	_ HostSource = KubernetesSecret{}
)

// Hosts returns the registries of the Secret already at Path.
func (k KubernetesSecret) Hosts(ctx context.Context) ([]string, error) {
	_, f, err := k.existing()
	if err != nil {
		return nil, err
	}
	return f.Keys(), nil
}

// Write renders the Secret with tokens added and writes it.
func (k KubernetesSecret) Write(ctx context.Context, tokens map[string]Token) error {
	if err := ValidateSecretName(k.Name, k.Namespace); err != nil {
		return err
	}
	var lock *securefile.Lock
	if k.Path != "" {
		var err error
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		lock, err = securefile.LockFile(lctx, k.Path+".lock")
		cancel()
		if err != nil {
			return err
		}
		defer lock.Unlock()
	}
	old, f, err := k.existing()
	if err != nil {
		return err
	}
	setAuths(f, tokens)
	cfg, err := f.Marshal()
	if err != nil {
		return err
	}
	manifest, err := k.render(old, cfg, tokens)
	if err != nil {
		return err
	}
	if k.Path == "" {
		_, err := k.Out.Write(manifest)
		return err
	}
	return securefile.WriteFile(k.Path, manifest)
}

// render builds the manifest; old is the Secret being replaced, if any,
// whose labels and annotations carry over.
func (k KubernetesSecret) render(old *Secret, cfg []byte, tokens map[string]Token) ([]byte, error) {
	var earliest time.Time
	for _, t := range tokens {
		if earliest.IsZero() || t.ExpiresAt.Before(earliest) {
			earliest = t.ExpiresAt
		}
	}
	labels := map[string]string{}
	annotations := map[string]string{}
	namespace := k.Namespace
	if namespace == "" && old != nil {
		// Refreshed without --namespace, a Secret stays where it was:
		// without one, kubectl apply would write it to the context's
		// default namespace instead.
		namespace = old.Metadata.Namespace
		if err := ValidateSecretName(k.Name, namespace); err != nil {
			return nil, fmt.Errorf("%s: %w", k.Path, err)
		}
	}
	if old != nil {
		for name, value := range old.Metadata.Labels {
			labels[name] = value
		}
		for name, value := range old.Metadata.Annotations {
			if name != lastApplied {
				annotations[name] = value
			}
		}
	}
	labels["app.kubernetes.io/managed-by"] = "tollgate"
	annotations[ExpiresAnnotation] = earliest.UTC().Format(time.RFC3339)
	s := Secret{
		APIVersion: "v1",
		Kind:       "Secret",
		Metadata: SecretMeta{
			Name:        k.Name,
			Namespace:   namespace,
			Labels:      labels,
			Annotations: annotations,
		},
		Type: SecretType,
		Data: map[string]string{SecretKey: base64.StdEncoding.EncodeToString(bytes.TrimSpace(cfg))},
	}
	var buf bytes.Buffer
	buf.WriteString("# Generated by tollgate refresh; apply with: kubectl apply --server-side -f FILE\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

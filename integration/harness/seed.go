package harness

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageSpec describes a random image to seed.
type ImageSpec struct {
	// Layers is the number of layers (default 3); LayerSize the size in
	// bytes of the random file each layer's tar holds (default 64 KiB).
	Layers    int
	LayerSize int64
	// OCI makes OCI media types; the default is Docker schema 2, which
	// every client reads.
	OCI bool
	// Platform such as linux/amd64 (the default) written into the config.
	Platform string
}

// Image is a seeded image: what a correct pull must reproduce.
type Image struct {
	Host, Repository, Tag string
	// Digest is the manifest digest; Manifest its raw bytes and MediaType its type.
	Digest    string
	Manifest  []byte
	MediaType string
	Config    string   // config blob digest
	Layers    []string // layer blob digests, in order
	Platform  string
}

// Ref is host/repository:tag.
func (i Image) Ref() string { return i.Host + "/" + i.Repository + ":" + i.Tag }

// Blobs is the config and every layer digest.
func (i Image) Blobs() []string { return append([]string{i.Config}, i.Layers...) }

// Index is a seeded multi-arch image.
type Index struct {
	Host, Repository, Tag string
	Digest                string
	Manifest              []byte
	MediaType             string
	Images                []Image // one per platform, Tag empty
}

// Ref is host/repository:tag.
func (x Index) Ref() string { return x.Host + "/" + x.Repository + ":" + x.Tag }

// Blobs is every blob of every platform image.
func (x Index) Blobs() []string {
	var out []string
	for _, im := range x.Images {
		out = append(out, im.Blobs()...)
	}
	return out
}

// RandomImage builds a random image in memory; its layers are gzip'd tars,
// so container engines can unpack it.
func RandomImage(spec ImageSpec) (v1.Image, error) {
	if spec.Layers == 0 {
		spec.Layers = 3
	}
	if spec.LayerSize == 0 {
		spec.LayerSize = 64 << 10
	}
	if spec.Platform == "" {
		spec.Platform = "linux/amd64"
	}
	layerType, manifestType, configType := types.DockerLayer, types.DockerManifestSchema2, types.DockerConfigJSON
	if spec.OCI {
		layerType, manifestType, configType = types.OCILayer, types.OCIManifestSchema1, types.OCIConfigJSON
	}
	img := mutate.MediaType(empty.Image, manifestType)
	img = mutate.ConfigMediaType(img, configType)
	for i := 0; i < spec.Layers; i++ {
		l, err := random.Layer(spec.LayerSize, layerType)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: fmt.Sprintf("tollgate test layer %d", i)}})
		if err != nil {
			return nil, err
		}
	}
	plat, err := v1.ParsePlatform(spec.Platform)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Config.Cmd = []string{"/bin/true"}
	return mutate.ConfigFile(img, cf)
}

// SeedImage pushes a random image to repository:tag of the registry (with
// its htpasswd login, if any) and returns what was pushed.
func (r *Registry) SeedImage(t testing.TB, repository, tag string, spec ImageSpec) Image {
	t.Helper()
	img, err := RandomImage(spec)
	if err != nil {
		t.Fatalf("harness: random image: %v", err)
	}
	ref, err := name.NewTag(r.Host+"/"+repository+":"+tag, name.Insecure)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := remote.Write(ref, img, r.remoteOptions()...); err != nil {
		t.Fatalf("harness: pushing %s: %v", ref, err)
	}
	out, err := describeImage(img)
	if err != nil {
		t.Fatal(err)
	}
	out.Host, out.Repository, out.Tag = r.Host, repository, tag
	if spec.Platform == "" {
		out.Platform = "linux/amd64"
	} else {
		out.Platform = spec.Platform
	}
	return out
}

// SeedIndex pushes one random image per platform (default linux/amd64 and
// linux/arm64) and an index over them to repository:tag.
func (r *Registry) SeedIndex(t testing.TB, repository, tag string, spec ImageSpec, platforms ...string) Index {
	t.Helper()
	if len(platforms) == 0 {
		platforms = []string{"linux/amd64", "linux/arm64"}
	}
	var idx v1.ImageIndex = empty.Index
	if spec.OCI {
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	} else {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	out := Index{Host: r.Host, Repository: repository, Tag: tag}
	for _, p := range platforms {
		s := spec
		s.Platform = p
		img, err := RandomImage(s)
		if err != nil {
			t.Fatalf("harness: random image: %v", err)
		}
		plat, _ := v1.ParsePlatform(p)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
		im, err := describeImage(img)
		if err != nil {
			t.Fatal(err)
		}
		im.Host, im.Repository, im.Platform = r.Host, repository, p
		out.Images = append(out.Images, im)
	}
	ref, err := name.NewTag(r.Host+"/"+repository+":"+tag, name.Insecure)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := remote.WriteIndex(ref, idx, r.remoteOptions()...); err != nil {
		t.Fatalf("harness: pushing index %s: %v", ref, err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := idx.MediaType()
	out.Manifest, out.MediaType, out.Digest = raw, string(mt), Digest(raw)
	return out
}

func (r *Registry) remoteOptions() []remote.Option {
	opts := []remote.Option{remote.WithContext(context.Background())}
	if r.Username != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password}))
	}
	return opts
}

func describeImage(img v1.Image) (Image, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return Image{}, err
	}
	m, err := img.Manifest()
	if err != nil {
		return Image{}, err
	}
	out := Image{Digest: Digest(raw), Manifest: raw, MediaType: string(m.MediaType), Config: m.Config.Digest.String()}
	for _, l := range m.Layers {
		out.Layers = append(out.Layers, l.Digest.String())
	}
	return out, nil
}

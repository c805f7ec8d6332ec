package proxybench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BigImage is a seeded benchmark image.
type BigImage struct {
	Repository, Tag string
	Digest          string
	Blobs           []string // config first, then layers
	LayerBytes      int64    // sum of layer sizes
}

type rawManifest struct {
	body []byte
	mt   types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// SeedBigImage pushes an image of `layers` layers of layerSize random bytes
// each to host/repository:tag, one layer in memory at a time. The layers
// are uncompressed-tar media types holding random bytes: a registry and a
// proxy move them like any layer, and no client here unpacks them.
func SeedBigImage(host, repository, tag string, layers int, layerSize int64, seed uint64) (BigImage, error) {
	repo, err := name.NewRepository(host+"/"+repository, name.Insecure)
	if err != nil {
		return BigImage{}, err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}))
	out := BigImage{Repository: repository, Tag: tag}
	var layerDescs []v1.Descriptor
	var diffIDs []v1.Hash
	for i := range layers {
		data := make([]byte, layerSize)
		for j := 0; j+8 <= len(data); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				data[j+k] = byte(v >> (8 * k))
			}
		}
		l := static.NewLayer(data, types.DockerUncompressedLayer)
		if err := remote.WriteLayer(repo, l); err != nil {
			return out, fmt.Errorf("pushing layer %d: %w", i, err)
		}
		d, _ := l.Digest()
		layerDescs = append(layerDescs, v1.Descriptor{MediaType: types.DockerUncompressedLayer, Size: layerSize, Digest: d})
		diffIDs = append(diffIDs, d)
		out.LayerBytes += layerSize
	}
	cfg := v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: diffIDs},
		Config:       v1.Config{Cmd: []string{"/bin/true"}},
	}
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return out, err
	}
	cl := static.NewLayer(cfgBytes, types.DockerConfigJSON)
	if err := remote.WriteLayer(repo, cl); err != nil {
		return out, fmt.Errorf("pushing config: %w", err)
	}
	cd, _ := cl.Digest()
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(cfgBytes)), Digest: cd},
		Layers:        layerDescs,
	}
	body, err := json.Marshal(m)
	if err != nil {
		return out, err
	}
	if err := remote.Put(repo.Tag(tag), rawManifest{body, types.DockerManifestSchema2}); err != nil {
		return out, fmt.Errorf("pushing manifest: %w", err)
	}
	h, _, _ := v1.SHA256(bytesReader(body))
	out.Digest = h.String()
	out.Blobs = append(out.Blobs, cd.String())
	for _, d := range layerDescs {
		out.Blobs = append(out.Blobs, d.Digest.String())
	}
	return out, nil
}

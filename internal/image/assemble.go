package image

import (
	"debug/buildinfo"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// assemble stacks base, assets and binary and writes the config: the
// binary as entrypoint, the non-root user, labels, fixed times. It returns
// the image, its binary layer and the binary's SBOM.
func assemble(base v1.Image, assetsLayer v1.Layer, binaryPath, binName string, p v1.Platform, s Settings, labels map[string]string) (v1.Image, v1.Layer, []byte, error) {
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, nil, nil, err
	}
	bi, err := buildinfo.ReadFile(binaryPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the build info of %s: %w", binaryPath, err)
	}
	sbom, err := sbomOf(bi)
	if err != nil {
		return nil, nil, nil, err
	}
	entrypoint := binaryDir + "/" + binName
	binLayer, err := newLayer([]entry{{name: entrypoint, mode: 0o755, data: bin}})
	if err != nil {
		return nil, nil, nil, err
	}
	var adds []mutate.Addendum
	if assetsLayer != nil {
		adds = append(adds, mutate.Addendum{Layer: assetsLayer, MediaType: types.OCILayer,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "pave build: kodata"}})
	}
	adds = append(adds, mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "pave build: binary"}})
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, nil, nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: epoch}
	cf.Author = ""
	cf.Config.Entrypoint = []string{"/" + entrypoint}
	cf.Config.Cmd = nil
	cf.Config.User = s.User
	if cf.Config.WorkingDir == "" {
		cf.Config.WorkingDir = "/"
	}
	cf.Config.Env = setEnv(cf.Config.Env, "PATH", "/usr/local/bin:/usr/bin:/bin")
	if assetsLayer != nil {
		cf.Config.Env = setEnv(cf.Config.Env, "KO_DATA_PATH", "/"+assetsDir)
	}
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	maps.Copy(cf.Config.Labels, labels)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, nil, nil, err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	return img, binLayer, sbom, nil
}

// setEnv sets KEY=value in env, keeping the base's other entries in order.
func setEnv(env []string, key, value string) []string {
	i := slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
	if i >= 0 {
		env = slices.Clone(env)
		env[i] = key + "=" + value
		return env
	}
	return append(slices.Clone(env), key+"="+value)
}

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestImageRuns builds the image as make image does, unpacks its layers
// into a root folder and runs forge in it with chroot as the image's user:
// forge version, then forge serve on a model repository with one
// inference request.
func TestImageRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs forge under chroot as the image's user: run it as root")
	}
	ortLib := os.Getenv("FORGE_ONNXRUNTIME_LIB")
	if ortLib == "" {
		t.Fatal("FORGE_ONNXRUNTIME_LIB is not set: export it (make setup fetches ONNX Runtime)")
	}
	bin := filepath.Join(t.TempDir(), "forge")
	// As the Dockerfile builds it, less -trimpath: with it every package
	// would compile again beside the test build's cache (minutes in CI).
	build := exec.Command("go", "build", "-ldflags", "-s -w", "-o", bin, "github.com/forge-mlops/forge/cmd/forge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "image")
	digest, err := Build(context.Background(), Spec{Forge: bin, ONNXRuntime: ortLib, Version: "test"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	img := readImage(t, dir, "latest", digest)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "10001:10001" || !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/forge"}) || cf.OS != "linux" {
		t.Fatalf("config: user %q, entrypoint %q, os %q", cf.Config.User, cf.Config.Entrypoint, cf.OS)
	}
	// Built again from the same files: the same image.
	again, err := Build(context.Background(), Spec{Forge: bin, ONNXRuntime: ortLib, Version: "test"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if again != digest {
		t.Errorf("rebuilt image has digest %s, first %s: the build is not reproducible", again, digest)
	}

	root := t.TempDir()
	os.Chmod(root, 0o755)
	unpack(t, mutate.Extract(img), root)
	model := filepath.Join(root, "models", "mlp", "1")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	onnx, err := os.ReadFile("../../testdata/models/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "model.onnx"), onnx, 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := inImage(root, cf.Config, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "forge ") {
		t.Fatalf("forge version in the image: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	var logs bytes.Buffer
	serve := inImage(root, cf.Config, "serve", "--model-repo", "/models", "--addr", addr, "--grpc-addr", "")
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			serve.Process.Kill()
			<-exited
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/v2/models/mlp/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("forge serve in the image exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("model mlp not ready in the image after 60s\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	body := `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`
	resp, err := http.Post(base+"/v2/models/mlp/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Outputs []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &got) != nil || len(got.Outputs) != 1 {
		t.Fatalf("infer: %s %s", resp.Status, raw)
	}
	// testdata/models/mlp.reference.json, first row.
	want := []float64{0.99994934, 5.062728e-05, 1.6752509e-16}
	if len(got.Outputs[0].Data) != len(want) {
		t.Fatalf("infer: %d values, want %d: %s", len(got.Outputs[0].Data), len(want), raw)
	}
	for i, w := range want {
		if math.Abs(got.Outputs[0].Data[i]-w) > 1e-5 {
			t.Errorf("output %d = %g, want %g", i, got.Outputs[0].Data[i], w)
		}
	}
}

// inImage runs forge in the unpacked image as a container runtime would:
// chrooted, as the image's user, with its environment, working folder and
// HOME from its /etc/passwd.
func inImage(root string, c v1.Config, args ...string) *exec.Cmd {
	cmd := &exec.Cmd{Path: c.Entrypoint[0], Args: append([]string{c.Entrypoint[0]}, args...), Dir: c.WorkingDir,
		Env: append(slices.Clone(c.Env), "HOME="+DataDir)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: UID, Gid: GID},
		Pdeathsig: syscall.SIGKILL}
	return cmd
}

func readImage(t *testing.T, dir, tag string, digest v1.Hash) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == tag {
			if d.Digest != digest {
				t.Fatalf("layout's %s is %s, built %s", tag, d.Digest, digest)
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no image tagged %s in %s", tag, dir)
	return nil
}

// unpack writes a flattened image filesystem into root.
func unpack(t *testing.T, rc io.ReadCloser, root string) {
	t.Helper()
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("layer file %q is outside the root", h.Name)
		}
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode); err == nil {
				_, err = io.Copy(f, tr)
				f.Close()
			}
		default:
			err = fmt.Errorf("unexpected type %c", h.Typeflag)
		}
		if err == nil && h.Typeflag != tar.TypeSymlink {
			err = os.Chown(p, h.Uid, h.Gid)
			if err == nil {
				m := mode
				if h.Mode&0o1000 != 0 {
					m |= os.ModeSticky
				}
				err = os.Chmod(p, m)
			}
		}
		if err != nil {
			t.Fatalf("unpack %s: %v", h.Name, err)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDockerfileMatches keeps the Dockerfile's last stage and Config in
// step: the same environment, user, folders, ports, entrypoint and files.
func TestDockerfileMatches(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var last []string
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			last = nil
		}
		last = append(last, line)
	}
	got := v1.Config{Volumes: map[string]struct{}{}, ExposedPorts: map[string]struct{}{}}
	var copied []string
	for _, line := range last {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch instr {
		case "ENV":
			for f := range strings.FieldsSeq(rest) {
				got.Env = append(got.Env, f)
			}
		case "USER":
			got.User = rest
		case "WORKDIR":
			got.WorkingDir = rest
		case "VOLUME":
			got.Volumes[rest] = struct{}{}
		case "EXPOSE":
			for f := range strings.FieldsSeq(rest) {
				got.ExposedPorts[f+"/tcp"] = struct{}{}
			}
		case "ENTRYPOINT":
			json.Unmarshal([]byte(rest), &got.Entrypoint)
		case "CMD":
			json.Unmarshal([]byte(rest), &got.Cmd)
		case "COPY":
			f := strings.Fields(rest)
			copied = append(copied, f[len(f)-1])
		case "RUN":
			if !strings.Contains(rest, fmt.Sprintf("--uid %d --gid %s --home-dir %s", UID, UserName, DataDir)) {
				t.Errorf("the Dockerfile's user is not %s (uid %d, home %s): %s", UserName, UID, DataDir, rest)
			}
		}
	}
	want := Config()
	// PATH comes from the Debian base image in the Dockerfile.
	want.Env = slices.DeleteFunc(want.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") })
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Dockerfile's last stage differs from image.Config (-image +Dockerfile):\n%s", d)
	}
	if d := cmp.Diff([]string{ForgePath, ONNXRuntimePath}, copied); d != "" {
		t.Errorf("Dockerfile copies (-image +Dockerfile):\n%s", d)
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f01)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n"
	got, err := parseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/lib/x86_64-linux-gnu/libm.so.6", "/lib64/ld-linux-x86-64.so.2"}, got); d != "" {
		t.Error(d)
	}
	if mergedUsr(got[0]) != "/usr/lib/x86_64-linux-gnu/libm.so.6" {
		t.Errorf("merged /usr path of %s is %s", got[0], mergedUsr(got[0]))
	}
	if _, err := parseLdd("\tlibfoo.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libfoo.so.1") {
		t.Errorf("a missing library: err %v, want one naming it", err)
	}
}

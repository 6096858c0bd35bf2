package serve

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPythonClient builds forge, starts `forge serve` on free ports over a
// model repository, and runs the standard-library Python client against it.
func TestPythonClient(t *testing.T) {
	lib := ortLibrary(t)
	bin := filepath.Join(t.TempDir(), "forge")
	build := exec.Command("go", "build", "-o", bin, "github.com/forge-mlops/forge/cmd/forge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := repo(t, map[string]string{"mlp/1": "mlp.onnx"})
	addr, gaddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "serve", "--model-repo", dir, "--addr", addr, "--grpc-addr", gaddr)
	cmd.Env = append(os.Environ(), "FORGE_ONNXRUNTIME_LIB="+lib)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("forge serve did not become ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	py := exec.Command("/usr/bin/python3", "testdata/oip_client_test.py", base, filepath.Join(fixtures, "mlp.reference.json"))
	out, err := py.CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s\nserver log:\n%s", err, out, logs.String())
	}
	t.Logf("%s", out)
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

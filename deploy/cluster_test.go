package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/retry"

	"github.com/forge-mlops/forge/api"
	"github.com/forge-mlops/forge/internal/blob/s3test"
	"github.com/forge-mlops/forge/internal/kubetest"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

// TestChartOnCluster installs the chart on a real kube-apiserver with
// PostgreSQL and S3 behind it, as `helm install` would (the rendered
// objects applied in Helm's install order), lets the test kubelet run the
// server and two forge serve replicas as processes of a freshly built
// forge, deploys a model through the server, and sends inference requests
// to each replica. A replica's pod then goes: it drains (not ready, still
// answering) and the Deployment replaces it. Then the server's pod goes:
// the new one, with an empty data folder, has the records (PostgreSQL) and
// serves the model (its file from S3).
func TestChartOnCluster(t *testing.T) {
	ortLib := os.Getenv("FORGE_ONNXRUNTIME_LIB")
	if ortLib == "" {
		t.Fatal("FORGE_ONNXRUNTIME_LIB is not set: export it (make setup fetches ONNX Runtime)")
	}
	rc := kubetest.Config(t)
	ns := kubetest.Namespace(t, rc)
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	pg := sqlstoretest.PostgresURL(t)
	s3 := s3test.Start(t, "forge")
	bin := filepath.Join(t.TempDir(), "forge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/forge-mlops/forge/cmd/forge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubetest.StartKubelet(t, rc, kubetest.KubeletConfig{
		Namespace: ns, Deployments: true, PodIPs: true, Grace: 20 * time.Second,
		// The image's entrypoint and environment.
		Commands: map[string]string{"/usr/local/bin/forge": bin},
		Env:      []string{"FORGE_ONNXRUNTIME_LIB=" + ortLib},
	})

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		l, _ := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		for _, p := range l.Items {
			b, err := cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(context.Background())
			t.Logf("pod %s (%s, %s): %v\n%s", p.Name, p.Status.Phase, p.Status.PodIP, err, tail(b))
		}
	})

	var tb [16]byte
	rand.Read(tb[:])
	admin := hex.EncodeToString(tb[:])
	for name, data := range map[string]map[string]string{
		"forge-db":    {"url": pg},
		"forge-s3":    {"AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey},
		"forge-admin": {"token": admin},
	} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ports := freePorts(t, 4)
	objs := render(t, ns, map[string]any{
		"server": map[string]any{"port": ports[0], "grpcPort": ports[1], "blob": "s3://forge/blobs",
			"s3": map[string]any{"endpoint": s3.Endpoint, "pathStyle": true}},
		// Every pod is on this machine, each with its own address.
		"serve": map[string]any{"port": ports[2], "grpcPort": ports[3], "listenHost": "$(POD_IP)"},
	})

	// helm install: the objects in order, through the API.
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(rc)))
	dyn := dynamic.NewForConfigOrDie(rc)
	for _, o := range objs {
		m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			t.Fatalf("%s: %v", o.GetKind(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	// As the HPA controller does for a Deployment under minReplicas.
	hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "forge-serve", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The test kubelet updates the Deployment's status meanwhile.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := cs.AppsV1().Deployments(ns).GetScale(ctx, "forge-serve", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = *hpa.Spec.MinReplicas
		_, err = cs.AppsV1().Deployments(ns).UpdateScale(ctx, "forge-serve", scale, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	server := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	eventually(t, 120*time.Second, "the server pod to be ready", func() bool { return status(server+"/readyz") == 200 })
	v, err := api.NewClient(server, admin).Version(ctx)
	if err != nil || v.Database != "postgres" {
		t.Fatalf("server version %+v (%v): want it on PostgreSQL", v, err)
	}
	env := append(os.Environ(), "FORGE_SERVER="+server, "FORGE_TOKEN="+admin)
	for _, args := range [][]string{
		{"model", "register", "mlp", "--file", "../testdata/models/mlp.onnx"},
		{"deploy", "live", "mlp@1"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("forge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The model file went to the bucket.
	if n := countFiles(t, filepath.Join(s3.Root, "forge", "blobs")); n == 0 {
		t.Fatal("no blob in the S3 bucket after registering a model")
	}

	replicas := servePods(t, cs, ns, 2)
	for _, p := range replicas {
		base := fmt.Sprintf("http://%s:%d", p.Status.PodIP, ports[2])
		eventually(t, 120*time.Second, "replica "+p.Name+" to be ready", func() bool { return status(base+"/v2/health/ready") == 200 })
		checkInfer(t, base)
	}

	// A replica goes (a node drain, a scale down): it stops being ready
	// but still answers for the drain delay, and the Deployment replaces it.
	gone := replicas[0]
	base := fmt.Sprintf("http://%s:%d", gone.Status.PodIP, ports[2])
	if err := cs.CoreV1().Pods(ns).Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the deleted replica to drain (not ready, still serving)", func() bool {
		return status(base+"/v2/health/ready") == 503 && status(base+"/v2/health/live") == 200
	})
	checkInfer(t, base)
	var fresh *corev1.Pod
	eventually(t, 60*time.Second, "a new replica in place of the deleted one", func() bool {
		for _, p := range servePods(t, cs, ns, 0) {
			if p.Name != gone.Name && p.Name != replicas[1].Name && p.Status.PodIP != "" {
				fresh = &p
				return true
			}
		}
		return false
	})
	base = fmt.Sprintf("http://%s:%d", fresh.Status.PodIP, ports[2])
	eventually(t, 120*time.Second, "the new replica to be ready", func() bool { return status(base+"/v2/health/ready") == 200 })
	checkInfer(t, base)

	// The server's pod goes too: its state is in PostgreSQL and S3, so the
	// new one has the model and the deployment; the replicas serve on.
	l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("server pods: %d (%v)", len(l.Items), err)
	}
	old := l.Items[0]
	if err := cs.CoreV1().Pods(ns).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "a new server pod", func() bool {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=server"})
		return err == nil && len(l.Items) == 1 && l.Items[0].Name != old.Name && l.Items[0].Status.Phase == corev1.PodRunning
	})
	eventually(t, 120*time.Second, "the new server pod to be ready", func() bool { return status(server+"/readyz") == 200 })
	cmd := exec.Command(bin, "deployments", "show", "live", "-o", "json")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"mlp"`) {
		t.Fatalf("forge deployments show live on the new server: %v\n%s", err, out)
	}
	// The new pod's data folder is empty: the model file comes from S3.
	eventually(t, 60*time.Second, "the new server to load the deployment", func() bool {
		return status(server+"/v2/health/ready") == 200
	})
	checkInfer(t, server, admin)
	checkInfer(t, base)
}

// servePods lists the running forge serve pods, waiting for n of them.
func servePods(t *testing.T, cs kubernetes.Interface, ns string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	list := func() bool {
		l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=serve"})
		if err != nil {
			t.Fatal(err)
		}
		pods = pods[:0]
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		return len(pods) >= n
	}
	if n == 0 {
		list()
		return pods
	}
	eventually(t, 60*time.Second, fmt.Sprintf("%d forge serve pods", n), list)
	return pods
}

// checkInfer asks base's deployment "live" for the first row of
// testdata/models/mlp.reference.json.
func checkInfer(t *testing.T, base string, token ...string) {
	t.Helper()
	body := `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`
	req, _ := http.NewRequest("POST", base+"/v2/models/live/infer", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+token[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("infer at %s: %v", base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var got struct {
		Outputs []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &got) != nil || len(got.Outputs) != 1 || len(got.Outputs[0].Data) != 3 {
		t.Fatalf("infer at %s: %s %s", base, resp.Status, raw)
	}
	for i, w := range []float64{0.99994934, 5.062728e-05, 1.6752509e-16} {
		if math.Abs(got.Outputs[0].Data[i]-w) > 1e-5 {
			t.Errorf("infer at %s: output %d = %g, want %g", base, i, got.Outputs[0].Data[i], w)
		}
	}
}

func status(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func tail(b []byte) []byte {
	if len(b) > 3000 {
		return b[len(b)-3000:]
	}
	return b
}

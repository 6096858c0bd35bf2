// Package kubetest starts a real Kubernetes control plane for tests: etcd
// (Debian's etcd-server) and kube-apiserver (built from the Go module proxy by
// scripts/build-kube-apiserver.sh, which Debian does not package). There are
// no kubelets, scheduler or controllers: tests act as them through the API,
// or start the test kubelet (StartKubelet), which plays a node, the Job
// controller and, if asked, the Deployment controller.
//
// One control plane serves a whole test binary: it starts on the first
// Config call and stops when Main's m.Run returns. Tests isolate themselves
// with Namespace.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// KubeVersion is the kube-apiserver the build script makes by default.
const KubeVersion = "v1.37.2"

// APIServerPath is where scripts/build-kube-apiserver.sh caches the binary;
// $KUBE_APISERVER overrides it.
func APIServerPath() string {
	if p := os.Getenv("KUBE_APISERVER"); p != "" {
		return p
	}
	cache := os.Getenv("FORGE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "forge")
	}
	return filepath.Join(cache, "kube-apiserver", KubeVersion, "kube-apiserver")
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited
}

type cluster struct {
	dir   string
	procs []*proc
	rc    *rest.Config
	err   error
}

var (
	once    sync.Once
	current *cluster
	nsSeq   atomic.Int64
)

// Main runs the tests, then stops the control plane if one was started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the control plane if one was started: for a TestMain that
// runs the tests through another helper's Main.
func Stop() {
	if current != nil {
		current.stop()
		current = nil
	}
}

// Config returns an admin client configuration for the control plane,
// starting it on first use. A missing binary fails the test.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	once.Do(func() {
		current = &cluster{}
		current.err = current.start()
	})
	if current.err != nil {
		t.Fatalf("kubetest: %v", current.err)
	}
	return rest.CopyConfig(current.rc)
}

// Namespace creates a fresh namespace for a test.
func Namespace(t testing.TB, rc *rest.Config) string {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(rc)
	name := fmt.Sprintf("t%d-%d", os.Getpid(), nsSeq.Add(1))
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create namespace: %v", err)
	}
	return name
}

func (c *cluster) start() error {
	apiserver := APIServerPath()
	if _, err := os.Stat(apiserver); err != nil {
		return fmt.Errorf("no kube-apiserver at %s: build it with scripts/build-kube-apiserver.sh (about 12 minutes; it is cached)", apiserver)
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return fmt.Errorf("no etcd on PATH: apt-get install -y etcd-server")
	}
	c.dir, err = os.MkdirTemp("", "kubetest-")
	if err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.run("etcd", etcd,
		"--name", "kubetest", "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL, "--log-level", "warn"); err != nil {
		return err
	}
	if err := waitHTTP(etcdURL+"/health", nil, 30*time.Second, c.procs[0]); err != nil {
		return fmt.Errorf("etcd did not come up: %w\n%s", err, c.tail("etcd"))
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(c.dir, "sa.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	var tb [16]byte
	rand.Read(tb[:])
	token := hex.EncodeToString(tb[:])
	tokenFile := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	port := strconv.Itoa(ports[2])
	if err := c.run("kube-apiserver", apiserver,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", port,
		"--cert-dir", filepath.Join(c.dir, "certs"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", keyFile, "--service-account-signing-key-file", keyFile,
		"--token-auth-file", tokenFile,
		"--authorization-mode", "RBAC",
		"--endpoint-reconciler-type", "none",
		"--service-cluster-ip-range", "10.96.0.0/16",
		// Pods name service accounts that no controller creates here.
		"--disable-admission-plugins", "ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--v", "1"); err != nil {
		return err
	}
	c.rc = &rest.Config{
		Host:            "https://127.0.0.1:" + port,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             1000, Burst: 1000,
	}
	if err := waitHTTP(c.rc.Host+"/readyz", map[string]string{"Authorization": "Bearer " + token}, 90*time.Second, c.procs[1]); err != nil {
		return fmt.Errorf("kube-apiserver did not become ready: %w\n%s", err, c.tail("kube-apiserver"))
	}
	// The default namespace is made by the apiserver shortly after it is ready.
	cs := kubernetes.NewForConfigOrDie(c.rc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cs.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no default namespace: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) run(name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Gone with the test binary, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	logf.Close()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	c.procs = append(c.procs, p)
	go func() { cmd.Wait(); close(p.done) }()
	return nil
}

func (c *cluster) tail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

func (c *cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

func waitHTTP(url string, header map[string]string, limit time.Duration, p *proc) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.cmd.ProcessState)
		default:
		}
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("after %s: %v", limit, last)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

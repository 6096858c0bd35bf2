package kubetest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
)

// KubeletConfig configures a test kubelet.
type KubeletConfig struct {
	// Namespace is the one namespace whose Jobs and pods it plays: other
	// tests act as kubelet by hand in theirs.
	Namespace string
	// Commands maps a container's argv[0], as written in the pod, to an
	// executable here ("forge" to a test binary that acts as forge):
	// images are not pulled, their entrypoints not known.
	Commands map[string]string
	// Env is the "image's" environment, under the pod's; PATH and HOME
	// come from the test process unless Env sets them.
	Env []string
	// Grace caps a pod's termination grace period; default 2s.
	Grace time.Duration
	// PodIPs gives each pod a loopback address of its own (127.x.y.z) as
	// status.podIP and its fieldRef, so that the pods of a Deployment can
	// each listen on the same port there; otherwise every pod is 127.0.0.1.
	PodIPs bool
	// Deployments plays the Deployment controller too (see deployments.go).
	Deployments bool
}

// Kubelet is a node of the test cluster and its job controller: it creates
// the pods of Indexed Jobs, runs their containers as local processes,
// reports their status through the API, and serves their output on
// pods/log. See StartKubelet for how a pod maps onto this machine.
type Kubelet struct {
	cfg   KubeletConfig
	cs    kubernetes.Interface
	node  string
	root  string
	jobs  batchlisters.JobLister
	pods  corelisters.PodLister
	queue workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	lastIP  int
	running map[types.UID]*podRun
	byName  map[string]*podRun // ns/name: logs outlive the run
	closed  bool
	t       testing.TB
}

// StartKubelet registers a Node backed by this process and starts playing
// the kubelet and the job controller in cfg.Namespace until the test ends.
//
// A pod runs here as follows. Init containers run one after the other, then
// the containers, each as a process group with the container's command and
// args. Its env is the pod's, resolved as the kubelet does (values with
// $(VAR) references, downward API fieldRefs, Secret and ConfigMap keys),
// plus JOB_COMPLETION_INDEX that the job controller adds. Volumes (emptyDir,
// hostPath) are folders here; there is no mount namespace, so a mount path in
// an argument (a shell script too), the working dir or an env value is
// rewritten to the folder where it stands as a whole path. There is no cluster DNS either: an env value that
// is a pod's name under a headless Service (host.subdomain.ns.svc) or a
// Service's name (svc.ns.svc) becomes 127.0.0.1 once it resolves, as all
// pods run on this machine; one that does not resolve in 10s fails the
// container. A container killed by SIGKILL that the kubelet did not send,
// with a memory limit, is reported OOMKilled (what a cgroup OOM kill looks
// like): a test asks for an OOM with `kill -9 $$`.
func StartKubelet(t testing.TB, rc *rest.Config, cfg KubeletConfig) *Kubelet {
	t.Helper()
	if cfg.Namespace == "" {
		t.Fatal("kubetest: kubelet needs a namespace")
	}
	if cfg.Grace == 0 {
		cfg.Grace = 2 * time.Second
	}
	k := &Kubelet{
		cfg: cfg, cs: kubernetes.NewForConfigOrDie(rc), node: "kubelet-" + cfg.Namespace, root: t.TempDir(),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		running: map[types.UID]*podRun{}, byName: map[string]*podRun{}, t: t,
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(k.serveLogs))
	srv.TLS = &tls.Config{}
	srv.StartTLS()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		k.queue.ShutDown()
		k.mu.Lock()
		k.closed = true
		runs := make([]*podRun, 0, len(k.running))
		for _, r := range k.running {
			runs = append(runs, r)
		}
		k.mu.Unlock()
		for _, r := range runs {
			r.kill(syscall.SIGKILL)
		}
		srv.Close()
		k.cs.CoreV1().Nodes().Delete(context.Background(), k.node, metav1.DeleteOptions{})
	})
	if err := k.register(ctx, srv.Listener.Addr().(*net.TCPAddr).Port); err != nil {
		t.Fatalf("kubetest: register node: %v", err)
	}

	f := informers.NewSharedInformerFactoryWithOptions(k.cs, 0, informers.WithNamespace(cfg.Namespace))
	ji, pi := f.Batch().V1().Jobs(), f.Core().V1().Pods()
	k.jobs, k.pods = ji.Lister(), pi.Lister()
	ji.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k.enqueueJob(o) },
		UpdateFunc: func(_, o any) { k.enqueueJob(o) },
		DeleteFunc: func(o any) { k.enqueueJob(o) },
	})
	pi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k.podEvent(ctx, o) },
		UpdateFunc: func(_, o any) { k.podEvent(ctx, o) },
		DeleteFunc: func(o any) { k.podEvent(ctx, o) },
	})
	if cfg.Deployments {
		k.playDeployments(ctx, f)
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	go k.work(ctx)
	return k
}

// Node is the name of the kubelet's Node.
func (k *Kubelet) Node() string { return k.node }

func (k *Kubelet) register(ctx context.Context, port int) error {
	node, err := k.cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.node}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// logf logs to the test while it runs; the kubelet may outlive it briefly.
func (k *Kubelet) logf(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.closed {
		k.t.Logf("kubelet: "+format, args...)
	}
}

func (k *Kubelet) enqueueJob(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if m, ok := o.(metav1.Object); ok {
		k.queue.Add(m.GetName())
	}
}

func (k *Kubelet) work(ctx context.Context) {
	for {
		name, shut := k.queue.Get()
		if shut {
			return
		}
		if err := k.syncJob(ctx, name); err != nil && ctx.Err() == nil {
			if !apierrors.IsConflict(err) {
				k.logf("sync job %s: %v", name, err)
			}
			k.queue.AddRateLimited(name)
		} else {
			k.queue.Forget(name)
		}
		k.queue.Done(name)
	}
}

func (k *Kubelet) podEvent(ctx context.Context, o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	if j := p.Labels[jobNameLabel]; j != "" {
		k.queue.Add(j)
	}
	if p.Spec.NodeName != k.node {
		return
	}
	k.mu.Lock()
	r := k.running[p.UID]
	terminal := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	if r == nil && !terminal && p.DeletionTimestamp == nil && !k.closed {
		r = &podRun{k: k, pod: p.DeepCopy(), ip: k.podIP(), stop: make(chan struct{}), logs: map[string]*containerLog{}}
		k.running[p.UID] = r
		k.byName[p.Namespace+"/"+p.Name] = r
		go r.run(ctx)
	}
	k.mu.Unlock()
	if p.DeletionTimestamp != nil {
		if r != nil {
			r.stopOnce.Do(func() { close(r.stop) })
		} else if !terminal {
			k.forget(ctx, p) // never started here: nothing to stop
		}
	}
}

// forget deletes a stopped pod for good, as the kubelet does once its
// containers are gone.
func (k *Kubelet) forget(ctx context.Context, p *corev1.Pod) {
	err := k.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		k.logf("delete pod %s: %v", p.Name, err)
	}
}

// updatePod changes a pod's status through the API, retrying conflicts.
func (k *Kubelet) updatePod(ctx context.Context, p *corev1.Pod, change func(*corev1.PodStatus)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != p.UID {
			return apierrors.NewNotFound(corev1.Resource("pods"), p.Name)
		}
		change(&cur.Status)
		_, err = k.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// podRun is one pod running here.
type podRun struct {
	k        *Kubelet
	pod      *corev1.Pod
	ip       string
	stop     chan struct{} // closed when the pod is being deleted
	stopOnce sync.Once

	mu     sync.Mutex
	logs   map[string]*containerLog // by container name
	procs  []*exec.Cmd              // running now
	killed bool                     // the kubelet signalled them
}

func (r *podRun) kill(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killed = true
	for _, c := range r.procs {
		syscall.Kill(-c.Process.Pid, sig)
	}
}

func (r *podRun) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

func (r *podRun) run(ctx context.Context) {
	k, p := r.k, r.pod
	defer func() {
		k.mu.Lock()
		delete(k.running, p.UID)
		k.mu.Unlock()
	}()
	dir := filepath.Join(k.root, string(p.UID))
	vols, err := r.volumes(dir)
	now := metav1.Now()
	if err == nil {
		err = k.updatePod(ctx, p, func(s *corev1.PodStatus) {
			s.Phase, s.StartTime = corev1.PodPending, &now
			s.HostIP, s.PodIP = "127.0.0.1", r.ip
			s.HostIPs, s.PodIPs = []corev1.HostIP{{IP: "127.0.0.1"}}, []corev1.PodIP{{IP: r.ip}}
			s.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}}
			s.InitContainerStatuses = waiting(p.Spec.InitContainers, "PodInitializing")
			s.ContainerStatuses = waiting(p.Spec.Containers, "PodInitializing")
		})
	}
	if err != nil {
		r.fail(ctx, err)
		return
	}
	var inits []corev1.ContainerStatus
	for _, c := range p.Spec.InitContainers {
		inits = append(inits, running(c))
		k.updatePod(ctx, p, func(s *corev1.PodStatus) { s.InitContainerStatuses = merge(inits, p.Spec.InitContainers) })
		t := r.runContainer(ctx, c, dir, vols)
		inits[len(inits)-1] = terminatedStatus(c, t)
		if t.ExitCode != 0 || r.stopping() {
			r.finish(ctx, corev1.PodFailed, func(s *corev1.PodStatus) {
				s.InitContainerStatuses = merge(inits, p.Spec.InitContainers)
				s.ContainerStatuses = waiting(p.Spec.Containers, "PodInitializing")
			})
			return
		}
	}
	mains := make([]corev1.ContainerStatus, len(p.Spec.Containers))
	for i, c := range p.Spec.Containers {
		mains[i] = running(c)
		// Its output can be asked for as soon as the pod says it runs.
		lg, err := newContainerLog(filepath.Join(dir, "logs", c.Name+".log"))
		if err != nil {
			r.fail(ctx, err)
			return
		}
		r.mu.Lock()
		r.logs[c.Name] = lg
		r.mu.Unlock()
	}
	k.updatePod(ctx, p, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodRunning
		s.InitContainerStatuses = merge(inits, p.Spec.InitContainers)
		s.ContainerStatuses = append([]corev1.ContainerStatus(nil), mains...)
		s.Conditions = append(s.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
	})
	var wg sync.WaitGroup
	for i, c := range p.Spec.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := r.runContainer(ctx, c, dir, vols)
			r.mu.Lock()
			mains[i] = terminatedStatus(c, t)
			r.mu.Unlock()
		}()
	}
	wg.Wait()
	phase := corev1.PodSucceeded
	for _, s := range mains {
		if s.State.Terminated.ExitCode != 0 {
			phase = corev1.PodFailed
		}
	}
	if r.stopping() {
		phase = corev1.PodFailed
	}
	r.finish(ctx, phase, func(s *corev1.PodStatus) {
		s.InitContainerStatuses = merge(inits, p.Spec.InitContainers)
		s.ContainerStatuses = mains
	})
}

func (r *podRun) fail(ctx context.Context, err error) {
	r.k.logf("pod %s: %v", r.pod.Name, err)
	r.finish(ctx, corev1.PodFailed, func(s *corev1.PodStatus) { s.Reason, s.Message = "KubetestError", err.Error() })
}

// finish reports the pod's end; a pod being deleted then goes for good.
func (r *podRun) finish(ctx context.Context, phase corev1.PodPhase, change func(*corev1.PodStatus)) {
	err := r.k.updatePod(ctx, r.pod, func(s *corev1.PodStatus) {
		s.Phase = phase
		s.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		change(s)
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		r.k.logf("pod %s: report end: %v", r.pod.Name, err)
	}
	if r.stopping() {
		r.k.forget(ctx, r.pod)
	}
}

// volumes makes a folder per emptyDir; a hostPath is its path.
func (r *podRun) volumes(dir string) (map[string]string, error) {
	vols := map[string]string{}
	for _, v := range r.pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil:
			vols[v.Name] = filepath.Join(dir, "volumes", v.Name)
			if err := os.MkdirAll(vols[v.Name], 0o777); err != nil {
				return nil, err
			}
		case v.HostPath != nil:
			vols[v.Name] = v.HostPath.Path
		default:
			return nil, fmt.Errorf("volume %s: only emptyDir and hostPath volumes are supported by kubetest", v.Name)
		}
	}
	return vols, nil
}

type mount struct{ path, host string }

// runContainer runs a container to its end (or until the pod is stopped)
// and says how it ended.
func (r *podRun) runContainer(ctx context.Context, c corev1.Container, dir string, vols map[string]string) corev1.ContainerStateTerminated {
	started := metav1.Now()
	fail := func(err error) corev1.ContainerStateTerminated {
		return corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: started, FinishedAt: metav1.Now()}
	}
	var mounts []mount
	for _, m := range c.VolumeMounts {
		host, ok := vols[m.Name]
		if !ok {
			return fail(fmt.Errorf("no volume %s", m.Name))
		}
		mounts = append(mounts, mount{filepath.Clean(m.MountPath), filepath.Join(host, m.SubPath)})
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].path) > len(mounts[j].path) })
	mapPath := func(s string) string { return mapMounts(s, mounts) }
	argv := append(append([]string(nil), c.Command...), c.Args...)
	if len(argv) == 0 {
		return fail(errors.New("no command: kubetest does not know images' entrypoints"))
	}
	env, err := r.env(ctx, c, mapPath)
	if err != nil {
		return fail(err)
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for i := range argv {
		argv[i] = mapPath(expand(argv[i], vars))
	}
	bin := r.k.cfg.Commands[c.Command[0]]
	if bin == "" {
		bin = argv[0]
		if !strings.Contains(bin, "/") {
			if bin, err = exec.LookPath(bin); err != nil {
				return fail(err)
			}
		}
	}
	wd := dir
	if c.WorkingDir != "" {
		wd = mapPath(c.WorkingDir)
	}
	r.mu.Lock()
	lg := r.logs[c.Name]
	r.mu.Unlock()
	if lg == nil {
		if lg, err = newContainerLog(filepath.Join(dir, "logs", c.Name+".log")); err != nil {
			return fail(err)
		}
	}
	defer lg.close()
	cmd := &exec.Cmd{Path: bin, Args: argv, Env: env, Dir: wd, Stdout: lg, Stderr: lg, WaitDelay: time.Second}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r.mu.Lock()
	if r.killed || r.stopping() {
		r.mu.Unlock()
		return fail(errors.New("pod is being deleted"))
	}
	err = cmd.Start()
	if err == nil {
		r.procs = append(r.procs, cmd)
		r.logs[c.Name] = lg
	}
	r.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-r.stop:
		grace := r.k.cfg.Grace
		if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < grace {
			grace = time.Duration(*g) * time.Second
		}
		r.kill(syscall.SIGTERM)
		select {
		case werr = <-done:
		case <-time.After(grace):
			r.kill(syscall.SIGKILL)
			werr = <-done
		}
	}
	// As a container's end: whatever it left behind goes with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	r.mu.Lock()
	killed := r.killed
	r.procs = slices.DeleteFunc(r.procs, func(x *exec.Cmd) bool { return x == cmd })
	r.mu.Unlock()
	t := corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: metav1.Now(),
		ContainerID: "kubetest://" + string(r.pod.UID) + "/" + c.Name}
	if werr != nil {
		t.Reason, t.ExitCode = "Error", int32(cmd.ProcessState.ExitCode())
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.ExitCode = 128 + int32(ws.Signal())
			_, limited := c.Resources.Limits[corev1.ResourceMemory]
			if ws.Signal() == syscall.SIGKILL && !killed && limited {
				t.Reason = "OOMKilled"
			}
		}
		if c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
			t.Message = lg.tail(80, 2048)
		}
	}
	return t
}

// mapMounts rewrites the mount paths in s (an argument, a shell script, an
// env value) to their folders here: where a path starts, at the start of s
// or after a character that cannot be part of a path, and ends at a "/" or
// such a character. Longer mount paths are tried first.
func mapMounts(s string, mounts []mount) string {
	inPath := func(c byte) bool {
		return c == '/' || c == '.' || c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if i == 0 || !inPath(s[i-1]) {
			for _, m := range mounts {
				end := i + len(m.path)
				if strings.HasPrefix(s[i:], m.path) && (end == len(s) || s[end] == '/' || !inPath(s[end])) {
					b.WriteString(m.host)
					i, matched = end, true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// clusterName is a name cluster DNS would answer: a pod under a headless
// Service (host.subdomain.ns.svc) or a Service (svc.ns.svc).
var clusterName = regexp.MustCompile(`^(?:([a-z0-9-]+)\.)?([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?$`)

// env resolves a container's environment as the kubelet would.
func (r *podRun) env(ctx context.Context, c corev1.Container, mapPath func(string) string) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, errors.New("envFrom is not supported by kubetest")
	}
	vars := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"), "HOSTNAME": r.pod.Spec.Hostname}
	if vars["HOSTNAME"] == "" {
		vars["HOSTNAME"] = r.pod.Name
	}
	order := []string{"PATH", "HOME", "HOSTNAME"}
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, kv := range r.k.cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, ev := range c.Env {
		v, err := r.envValue(ctx, ev, vars)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", ev.Name, err)
		}
		if v, err = r.resolve(ctx, v); err != nil {
			return nil, fmt.Errorf("env %s: %w", ev.Name, err)
		}
		set(ev.Name, mapPath(v))
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out, nil
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

func (r *podRun) envValue(ctx context.Context, ev corev1.EnvVar, vars map[string]string) (string, error) {
	src := ev.ValueFrom
	switch {
	case src == nil:
		return expand(ev.Value, vars), nil
	case src.FieldRef != nil:
		return fieldValue(r.pod, r.ip, src.FieldRef.FieldPath)
	case src.SecretKeyRef != nil:
		s, err := r.k.cs.CoreV1().Secrets(r.pod.Namespace).Get(ctx, src.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		v, ok := s.Data[src.SecretKeyRef.Key]
		if !ok {
			return "", fmt.Errorf("secret %s has no key %s", s.Name, src.SecretKeyRef.Key)
		}
		return string(v), nil
	case src.ConfigMapKeyRef != nil:
		cm, err := r.k.cs.CoreV1().ConfigMaps(r.pod.Namespace).Get(ctx, src.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		v, ok := cm.Data[src.ConfigMapKeyRef.Key]
		if !ok {
			return "", fmt.Errorf("config map %s has no key %s", cm.Name, src.ConfigMapKeyRef.Key)
		}
		return v, nil
	}
	return "", errors.New("this kind of valueFrom is not supported by kubetest")
}

var fieldRx = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.+)'\]$`)

// expand replaces $(VAR) with an earlier variable's value; $$ escapes.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func fieldValue(p *corev1.Pod, ip, path string) (string, error) {
	if m := fieldRx.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return p.Labels[m[2]], nil
		}
		return p.Annotations[m[2]], nil
	}
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return ip, nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	}
	return "", fmt.Errorf("fieldRef %s is not supported by kubetest", path)
}

// resolve plays cluster DNS for a value that is a cluster name: every pod
// is on this machine, so a name that resolves is 127.0.0.1. The Service may
// be created just after the Job, so it waits a little, as a resolver retries.
func (r *podRun) resolve(ctx context.Context, v string) (string, error) {
	m := clusterName.FindStringSubmatch(v)
	if m == nil {
		return v, nil
	}
	host, svcName, ns := m[1], m[2], m[3]
	deadline := time.Now().Add(10 * time.Second)
	var why error
	for {
		why = r.lookup(ctx, host, svcName, ns)
		if why == nil {
			return "127.0.0.1", nil
		}
		if time.Now().After(deadline) || r.stopping() || ctx.Err() != nil {
			return "", fmt.Errorf("%s does not resolve: %w", v, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *podRun) lookup(ctx context.Context, host, svcName, ns string) error {
	svc, err := r.k.cs.CoreV1().Services(ns).Get(ctx, svcName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if host == "" {
		return nil
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		return fmt.Errorf("service %s is not headless", svcName)
	}
	pods, err := r.k.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.Spec.Hostname == host && p.Spec.Subdomain == svcName && p.DeletionTimestamp == nil {
			return nil
		}
	}
	return fmt.Errorf("no pod with hostname %s and subdomain %s selected by service %s", host, svcName, svcName)
}

func waiting(cs []corev1.Container, reason string) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, len(cs))
	for i, c := range cs {
		out[i] = corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
	}
	return out
}

func running(c corev1.Container) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "kubetest://" + c.Image, Started: new(true), Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}
}

func terminatedStatus(c corev1.Container, t corev1.ContainerStateTerminated) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "kubetest://" + c.Image, Started: new(false),
		ContainerID: t.ContainerID, State: corev1.ContainerState{Terminated: &t}}
}

// merge completes the statuses of the init containers run so far with
// waiting ones for the rest.
func merge(done []corev1.ContainerStatus, cs []corev1.Container) []corev1.ContainerStatus {
	out := waiting(cs, "PodInitializing")
	copy(out, done)
	return out
}

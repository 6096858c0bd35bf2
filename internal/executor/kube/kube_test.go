package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/kubetest"
)

// requests records the executor's API calls.
type requests struct {
	mu   sync.Mutex
	list []string // "METHOD path?query"
	body map[string]string
	rt   http.RoundTripper
}

func (r *requests) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Method + " " + req.URL.Path
	if req.URL.RawQuery != "" {
		key += "?" + req.URL.RawQuery
	}
	var body string
	if req.Method == "DELETE" && req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		body = string(b)
	}
	r.mu.Lock()
	r.list = append(r.list, key)
	if body != "" {
		r.body[key] = body
	}
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

func (r *requests) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.list[n:]...)
}

func (r *requests) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list)
}

type env struct {
	t    *testing.T
	ns   string
	cs   kubernetes.Interface // the test's own client, acting as kubelet and job controller
	rc   *rest.Config
	dir  string
	node string // where createPods puts pods
}

func newEnv(t *testing.T) *env {
	rc := kubetest.Config(t)
	ns := kubetest.Namespace(t, rc)
	return &env{t: t, ns: ns, cs: kubernetes.NewForConfigOrDie(rc), rc: rc, dir: t.TempDir(), node: "node-1"}
}

func (v *env) executor() (*Executor, *requests) {
	v.t.Helper()
	reqs := &requests{body: map[string]string{}}
	rc := rest.CopyConfig(v.rc)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { reqs.rt = rt; return reqs })
	e, err := New(Config{Namespace: v.ns, Image: "python:3.11", ForgeImage: "forge:dev", LogDir: v.dir, LogDrain: time.Second}, rc)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { e.Close() })
	return e, reqs
}

var jobSeq int

func launch(nodes int) *forge.Launch {
	jobSeq++
	return &forge.Launch{
		JobID: fmt.Sprintf("j0198a3c0f2e1%04x%04x", jobSeq, time.Now().UnixNano()&0xffff), Attempt: 1,
		Command: []string{"python3", "train.py"}, Env: map[string]string{"FORGE_JOB_ID": "x"},
		Resources: forge.Resources{CPUs: 1, MemoryBytes: 1 << 30, GPUs: 1}, Nodes: nodes, ProcsPerNode: 1,
	}
}

func (v *env) job(name string) *batchv1.Job {
	v.t.Helper()
	j, err := v.cs.BatchV1().Jobs(v.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		v.t.Fatal(err)
	}
	return j
}

// createPods does what the job controller would: one pod per index, from
// the Job's template.
func (v *env) createPods(job *batchv1.Job) []*corev1.Pod {
	v.t.Helper()
	var pods []*corev1.Pod
	for i := range int(*job.Spec.Completions) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%d-abcde", job.Name, i), Namespace: v.ns,
				Labels:          map[string]string{batchv1.JobCompletionIndexAnnotation: fmt.Sprint(i), "batch.kubernetes.io/job-name": job.Name},
				Annotations:     map[string]string{AnnoCompletion: fmt.Sprint(i)},
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
			},
			Spec: *job.Spec.Template.Spec.DeepCopy(),
		}
		for k, val := range job.Spec.Template.Labels {
			p.Labels[k] = val
		}
		p.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, i)
		p.Spec.NodeName = v.node
		created, err := v.cs.CoreV1().Pods(v.ns).Create(context.Background(), p, metav1.CreateOptions{})
		if err != nil {
			v.t.Fatalf("create pod: %v", err)
		}
		pods = append(pods, created)
	}
	return pods
}

// setPod does what the kubelet would: report the pod's phase and its main
// container's state.
func (v *env) setPod(p *corev1.Pod, phase corev1.PodPhase, state corev1.ContainerState) *corev1.Pod {
	v.t.Helper()
	cur, err := v.cs.CoreV1().Pods(v.ns).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		v.t.Fatal(err)
	}
	cur.Status.Phase = phase
	cur.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: MainContainer, Image: cur.Spec.Containers[0].Image, ImageID: "sha256:1", State: state,
		Ready: state.Running != nil, ContainerID: "containerd://1",
	}}
	if cur.Status.StartTime == nil {
		cur.Status.StartTime = &metav1.Time{Time: time.Now()}
	}
	out, err := v.cs.CoreV1().Pods(v.ns).UpdateStatus(context.Background(), cur, metav1.UpdateOptions{})
	if err != nil {
		v.t.Fatalf("update pod status: %v", err)
	}
	return out
}

func terminated(code int32, reason string) corev1.ContainerState {
	now := metav1.Now()
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: now, FinishedAt: now, ContainerID: "containerd://1"}}
}

var running = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}

// finishJob does what the job controller would once the pods stopped.
func (v *env) finishJob(name string, failed bool, reason string) {
	v.t.Helper()
	j := v.job(name)
	now := metav1.Now()
	if j.Status.StartTime == nil {
		j.Status.StartTime = &now
	}
	n := *j.Spec.Completions
	if failed {
		j.Status.Failed = 1
		j.Status.FailedIndexes = nil
		j.Status.Conditions = append(j.Status.Conditions,
			batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: "test", LastTransitionTime: now, LastProbeTime: now},
			batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: "test", LastTransitionTime: now, LastProbeTime: now})
	} else {
		j.Status.Succeeded = n
		j.Status.CompletedIndexes = fmt.Sprintf("0-%d", n-1)
		if n == 1 {
			j.Status.CompletedIndexes = "0"
		}
		j.Status.CompletionTime = &now
		j.Status.Conditions = append(j.Status.Conditions,
			batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
			batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now})
	}
	if _, err := v.cs.BatchV1().Jobs(v.ns).UpdateStatus(context.Background(), j, metav1.UpdateOptions{}); err != nil {
		v.t.Fatalf("update job status: %v", err)
	}
}

func nameOf(t *testing.T, h forge.Handle) string {
	t.Helper()
	ph, err := parseHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	return ph.Name
}

type waited struct {
	exit forge.Exit
	err  error
}

func waitAsync(e *Executor, h forge.Handle) chan waited {
	ch := make(chan waited, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		x, err := e.Wait(ctx, h)
		ch <- waited{x, err}
	}()
	return ch
}

func expectExit(t *testing.T, ch chan waited, want forge.Exit) {
	t.Helper()
	select {
	case w := <-ch:
		if w.err != nil {
			t.Fatalf("wait: %v", w.err)
		}
		if w.exit.Code != want.Code || w.exit.Reason != want.Reason || !strings.Contains(w.exit.Message, want.Message) {
			t.Errorf("exit %+v, want %+v", w.exit, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("wait did not return")
	}
}

func expectBlocked(t *testing.T, ch chan waited) {
	t.Helper()
	select {
	case w := <-ch:
		t.Fatalf("wait returned early: %+v %v", w.exit, w.err)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStartCreatesJobAndService(t *testing.T) {
	v := newEnv(t)
	e, _ := v.executor()
	l := launch(2)
	l.Timeout = 90*time.Second + 500*time.Millisecond
	h, err := e.Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, h)
	j := v.job(name)
	if *j.Spec.CompletionMode != batchv1.IndexedCompletion || *j.Spec.Parallelism != 2 || *j.Spec.Completions != 2 || *j.Spec.BackoffLimit != 0 {
		t.Errorf("stored job spec: %+v", j.Spec)
	}
	if d := j.Spec.ActiveDeadlineSeconds; d == nil || *d != 91 {
		t.Errorf("activeDeadlineSeconds %v, want 91 (the timeout, rounded up)", d)
	}
	h1, err := e.Start(context.Background(), launch(1))
	if err != nil {
		t.Fatal(err)
	}
	if d := v.job(nameOf(t, h1)).Spec.ActiveDeadlineSeconds; d != nil {
		t.Errorf("a job without a timeout got activeDeadlineSeconds %d", *d)
	}
	if j.Labels[LabelJobID] != l.JobID || j.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("labels %v", j.Labels)
	}
	main := j.Spec.Template.Spec.Containers[0]
	if q := main.Resources.Limits[GPUResource]; q.Value() != 1 {
		t.Errorf("gpu limit %s", q.String())
	}
	if envOf(main)["MASTER_ADDR"].Value != name+"-0."+name+"."+v.ns+".svc" || j.Spec.Template.Spec.Subdomain != name {
		t.Errorf("MASTER_ADDR %q, subdomain %q", envOf(main)["MASTER_ADDR"].Value, j.Spec.Template.Spec.Subdomain)
	}
	svc, err := v.cs.CoreV1().Services(v.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].UID != j.UID {
		t.Errorf("service: clusterIP %q owners %+v", svc.Spec.ClusterIP, svc.OwnerReferences)
	}
	// The pods the job controller would make pass the apiserver's validation
	// (the downward API path for the rank among it).
	v.createPods(j)
}

func TestStatusFlowsToWait(t *testing.T) {
	v := newEnv(t)
	e, _ := v.executor()
	cases := []struct {
		name     string
		states   []corev1.ContainerState // per node
		failed   bool
		reason   string // job condition reason
		podPatch func(*corev1.Pod)
		want     forge.Exit
	}{
		{name: "success", states: []corev1.ContainerState{terminated(0, "Completed"), terminated(0, "Completed")},
			want: forge.Exit{Code: 0, Reason: forge.ReasonExited}},
		{name: "exit3", states: []corev1.ContainerState{terminated(0, "Completed"), terminated(3, "Error")}, failed: true, reason: "BackoffLimitExceeded",
			want: forge.Exit{Code: 3, Reason: forge.ReasonExited, Message: "node 1"}},
		{name: "oom", states: []corev1.ContainerState{terminated(137, "OOMKilled"), running}, failed: true, reason: "BackoffLimitExceeded",
			want: forge.Exit{Code: 137, Reason: forge.ReasonOOM}},
		{name: "deadline", states: []corev1.ContainerState{running, running}, failed: true, reason: batchv1.JobReasonDeadlineExceeded,
			want: forge.Exit{Code: -1, Reason: forge.ReasonTimeout}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := e.Start(context.Background(), launch(2))
			if err != nil {
				t.Fatal(err)
			}
			ch := waitAsync(e, h)
			pods := v.createPods(v.job(nameOf(t, h)))
			for _, p := range pods {
				v.setPod(p, corev1.PodRunning, running)
			}
			expectBlocked(t, ch)
			for i, p := range pods {
				phase := corev1.PodRunning
				if s := c.states[i].Terminated; s != nil {
					phase = corev1.PodSucceeded
					if s.ExitCode != 0 {
						phase = corev1.PodFailed
					}
				}
				v.setPod(p, phase, c.states[i])
			}
			expectBlocked(t, ch) // pods alone do not end the attempt: the Job's condition does
			v.finishJob(nameOf(t, h), c.failed, c.reason)
			expectExit(t, ch, c.want)
		})
	}
}

func TestPendingReasonSurfaced(t *testing.T) {
	v := newEnv(t)
	e, _ := v.executor()
	h, err := e.Start(context.Background(), launch(1))
	if err != nil {
		t.Fatal(err)
	}
	ch := waitAsync(e, h)
	p := v.createPods(v.job(nameOf(t, h)))[0]
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", LastTransitionTime: metav1.Now()}}
	if _, err := v.cs.CoreV1().Pods(v.ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var desc string
	for time.Now().Before(deadline) {
		desc, _ = e.Describe(context.Background(), h)
		if strings.Contains(desc, "Unschedulable") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(desc, "Insufficient nvidia.com/gpu") {
		t.Errorf("describe: %q", desc)
	}
	// The note reaches the log from the pod watch, which may trail the
	// GET that Describe makes.
	want := "[forge] pending: pod " + p.Name + " Unschedulable"
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := e.Logs(context.Background(), h, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(r)
		r.Close()
		if strings.Contains(string(b), want) || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(string(b), want) {
		t.Errorf("log does not say why the pod is pending:\n%s", b)
	}
	expectBlocked(t, ch)
}

func TestCancelDeletesInBackground(t *testing.T) {
	v := newEnv(t)
	e, reqs := v.executor()
	h, err := e.Start(context.Background(), launch(1))
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, h)
	ch := waitAsync(e, h)
	v.setPod(v.createPods(v.job(name))[0], corev1.PodRunning, running)
	expectBlocked(t, ch)
	if err := e.Cancel(context.Background(), h, forge.ReasonCancelled); err != nil {
		t.Fatal(err)
	}
	expectExit(t, ch, forge.Exit{Code: -1, Reason: forge.ReasonCancelled})
	// Background propagation deletes the Job at once; the default for
	// batch/v1 (orphan) or foreground would leave it with a finalizer, as
	// no garbage collector runs here.
	if _, err := v.cs.BatchV1().Jobs(v.ns).Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("job still there after cancel: %v", err)
	}
	var del string
	reqs.mu.Lock()
	for k, b := range reqs.body {
		if strings.Contains(k, "/jobs/"+name) {
			del = b
		}
	}
	reqs.mu.Unlock()
	// The body is JSON or protobuf, depending on client-go's default.
	if !strings.Contains(del, string(metav1.DeletePropagationBackground)) {
		t.Errorf("delete options %q do not ask for background propagation", del)
	}
	// Cancelling again, or an ended attempt, is not an error.
	if err := e.Cancel(context.Background(), h, forge.ReasonTimeout); err != nil {
		t.Errorf("second cancel: %v", err)
	}
}

func TestRestartReattaches(t *testing.T) {
	v := newEnv(t)
	first, _ := v.executor()
	h, err := first.Start(context.Background(), launch(2))
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, h)
	pods := v.createPods(v.job(name))
	for _, p := range pods {
		v.setPod(p, corev1.PodRunning, running)
	}
	first.Close() // the server stops; the Job runs on

	second, _ := v.executor()
	if err := second.Attach(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	ch := waitAsync(second, h)
	expectBlocked(t, ch)
	for _, p := range pods {
		v.setPod(p, corev1.PodSucceeded, terminated(0, "Completed"))
	}
	v.finishJob(name, false, "")
	expectExit(t, ch, forge.Exit{Code: 0, Reason: forge.ReasonExited})

	// A Job deleted while no server watched is lost.
	h2, err := second.Start(context.Background(), launch(1))
	if err != nil {
		t.Fatal(err)
	}
	second.Close()
	bg := metav1.DeletePropagationBackground // as kubectl delete does
	if err := v.cs.BatchV1().Jobs(v.ns).Delete(context.Background(), nameOf(t, h2), metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	third, _ := v.executor()
	expectExit(t, waitAsync(third, h2), forge.Exit{Code: -1, Reason: forge.ReasonLost})
}

func TestUnknownJobsLeftAlone(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	foreign := []*batchv1.Job{
		{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}},
		// Forge's labels, but no handle names it (another Forge, or a
		// leftover): still not ours to touch.
		{ObjectMeta: metav1.ObjectMeta{Name: "forge-junknown-1", Labels: map[string]string{LabelManagedBy: ManagedBy, LabelJobID: "junknown", LabelName: "forge-junknown-1"}}},
	}
	var before []string
	for _, j := range foreign {
		j.Spec = batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: j.Labels},
			Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}}
		got, err := v.cs.BatchV1().Jobs(v.ns).Create(ctx, j, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, got.ResourceVersion)
	}
	e, reqs := v.executor()
	h, err := e.Start(ctx, launch(1))
	if err != nil {
		t.Fatal(err)
	}
	ch := waitAsync(e, h)
	expectBlocked(t, ch)
	if err := e.Cancel(ctx, h, forge.ReasonCancelled); err != nil {
		t.Fatal(err)
	}
	expectExit(t, ch, forge.Exit{Code: -1, Reason: forge.ReasonCancelled})
	for i, j := range foreign {
		got, err := v.cs.BatchV1().Jobs(v.ns).Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil || got.ResourceVersion != before[i] {
			t.Errorf("job %s touched: %v (resourceVersion %s -> %v)", j.Name, err, before[i], got)
		}
	}
	for _, r := range reqs.since(0) {
		if strings.Contains(r, "someone-elses") || strings.Contains(r, "junknown") {
			t.Errorf("request on a foreign job: %s", r)
		}
	}
	// A handle naming a Job that is not Forge's attempt is refused.
	wrong, _ := json.Marshal(handle{Namespace: v.ns, Name: "forge-junknown-1", JobID: "jother", Attempt: 1})
	if err := e.Cancel(ctx, forge.Handle(wrong), forge.ReasonCancelled); forge.KindOf(err) != forge.Conflict {
		t.Errorf("cancel through a handle for another job: %v", err)
	}
}

func TestOneWatchNotAPollPerJob(t *testing.T) {
	v := newEnv(t)
	e, reqs := v.executor()
	const n = 20
	var hs []forge.Handle
	var chs []chan waited
	for range n {
		h, err := e.Start(context.Background(), launch(1))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		chs = append(chs, waitAsync(e, h))
	}
	time.Sleep(500 * time.Millisecond) // every waiter is waiting
	mark := reqs.count()
	time.Sleep(2 * time.Second)
	if idle := reqs.since(mark); len(idle) != 0 {
		t.Errorf("%d API requests while %d jobs ran and nothing changed: %v", len(idle), n, idle)
	}
	for _, h := range hs {
		v.finishJob(nameOf(t, h), false, "")
	}
	for _, ch := range chs {
		expectExit(t, ch, forge.Exit{Code: 0, Reason: forge.ReasonExited})
	}
	// One watch per kind (client-go may open it twice when the apiserver
	// declines a streaming list), and no request per job to learn its state.
	watched, gets := map[string]int{}, map[string]int{}
	for _, r := range reqs.since(0) {
		path, query, _ := strings.Cut(r, "?")
		switch {
		case strings.Contains(query, "watch=true"):
			watched[path[strings.LastIndexByte(path, '/')+1:]]++
		case strings.HasPrefix(r, "GET ") && strings.Contains(path, "/jobs/"):
			// A waiter looks once at a Job the informer has not seen yet.
			if gets[path]++; gets[path] > 1 {
				t.Errorf("job state asked for again: %s", r)
			}
		}
	}
	if len(watched) != 2 || watched["jobs"] == 0 || watched["pods"] == 0 || watched["jobs"]+watched["pods"] > 4 {
		t.Errorf("watches %v, want one on jobs and one on pods", watched)
	}
}

// fakeKubelet serves pods/log as a kubelet does, for the apiserver to proxy:
// a Node points the apiserver at it.
func (v *env) fakeKubelet(lines map[string][]string) {
	v.t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /containerLogs/NS/POD/CONTAINER
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(parts) != 4 || parts[0] != "containerLogs" || parts[3] != MainContainer {
			http.NotFound(w, r)
			return
		}
		ts := time.Now().UTC()
		for i, l := range lines[parts[2]] {
			fmt.Fprintf(w, "%s %s\n", ts.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), l)
		}
	}))
	v.t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	node, err := v.cs.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + v.ns}}, metav1.CreateOptions{})
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { v.cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := v.cs.CoreV1().Nodes().UpdateStatus(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		v.t.Fatal(err)
	}
	v.node = node.Name
}

func TestLogsFollowedFromPods(t *testing.T) {
	v := newEnv(t)
	e, _ := v.executor()
	h, err := e.Start(context.Background(), launch(2))
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, h)
	v.fakeKubelet(map[string][]string{
		name + "-0-abcde": {"epoch 1 loss 0.5", "epoch 2 loss 0.25"},
		name + "-1-abcde": {"worker ready"},
	})
	ch := waitAsync(e, h)
	pods := v.createPods(v.job(name))
	for _, p := range pods {
		v.setPod(p, corev1.PodRunning, running)
	}
	for _, p := range pods {
		v.setPod(p, corev1.PodSucceeded, terminated(0, "Completed"))
	}
	v.finishJob(name, false, "")
	expectExit(t, ch, forge.Exit{Code: 0, Reason: forge.ReasonExited})
	r, err := e.Logs(context.Background(), h, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ts, prefix, text, ok := parseLine(line)
		if !ok || ts.IsZero() {
			t.Errorf("line %q is not \"TIME [rank] text\"", line)
			continue
		}
		got = append(got, prefix+" "+text)
	}
	slices.Sort(got)
	want := []string{"[0] epoch 1 loss 0.5", "[0] epoch 2 loss 0.25", "[1] worker ready"}
	if !slices.Equal(got, want) {
		t.Errorf("log lines %q, want %q", got, want)
	}
	// From an offset: the rest only.
	first := bytes.IndexByte(b, '\n') + 1
	r, err = e.Logs(context.Background(), h, int64(first))
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	r.Close()
	if string(rest) != string(b[first:]) {
		t.Errorf("from offset %d: %q, want %q", first, rest, b[first:])
	}
}

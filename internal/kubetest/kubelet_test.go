package kubetest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestMain(m *testing.M) { Main(m) }

type kenv struct {
	t  *testing.T
	ns string
	cs kubernetes.Interface
}

func newKubelet(t *testing.T) *kenv {
	rc := Config(t)
	ns := Namespace(t, rc)
	StartKubelet(t, rc, KubeletConfig{Namespace: ns})
	return &kenv{t: t, ns: ns, cs: kubernetes.NewForConfigOrDie(rc)}
}

// Scripts are container commands: Kubernetes turns $$ into $ there.

// indexed makes an Indexed Job of n pods running script in sh, with a
// headless Service named like it, a scratch volume at /scratch that an init
// container writes to, and host, a folder of the test, at /host.
func (v *kenv) indexed(name string, n int32, host, script string, mod func(*corev1.PodSpec)) {
	v.t.Helper()
	mode := batchv1.IndexedCompletion
	lbl := map[string]string{"app": name}
	spec := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Subdomain:     name,
		Volumes: []corev1.Volume{
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host}}},
		},
		InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "echo from-init > /scratch/f"},
			VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}},
		Containers: []corev1.Container{{
			Name: "main", Image: "busybox", Command: []string{"sh", "-c", script}, WorkingDir: "/scratch",
			Env: []corev1.EnvVar{
				{Name: "RANK", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + indexLabel + "']"}}},
				{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "MASTER", Value: fmt.Sprintf("%s-0.%s.%s.svc", name, name, v.ns)},
				{Name: "WHO", Value: "rank-$(RANK)"},
				{Name: "OUT", Value: "/host/out"},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "host", MountPath: "/host"}},
		}},
	}
	if mod != nil {
		mod(&spec)
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.ns},
		Spec: batchv1.JobSpec{
			CompletionMode: &mode, Completions: &n, Parallelism: &n, BackoffLimit: new(int32(0)),
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: spec},
		},
	}
	ctx := context.Background()
	created, err := v.cs.BatchV1().Jobs(v.ns).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		v.t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.ns,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(created, batchv1.SchemeGroupVersion.WithKind("Job"))}},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: lbl},
	}
	if _, err := v.cs.CoreV1().Services(v.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		v.t.Fatal(err)
	}
}

// ended waits for the Job's terminal condition.
func (v *kenv) ended(name string) *batchv1.Job {
	v.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		j, err := v.cs.BatchV1().Jobs(v.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			v.t.Fatal(err)
		}
		if finished(j) {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.t.Fatalf("job %s did not end", name)
	return nil
}

func (v *kenv) pods(name string) map[string]corev1.Pod {
	v.t.Helper()
	list, err := v.cs.CoreV1().Pods(v.ns).List(context.Background(), metav1.ListOptions{LabelSelector: jobNameLabel + "=" + name})
	if err != nil {
		v.t.Fatal(err)
	}
	out := map[string]corev1.Pod{}
	for _, p := range list.Items {
		out[p.Annotations[indexLabel]] = p
	}
	return out
}

func (v *kenv) log(p corev1.Pod) string {
	v.t.Helper()
	rc, err := v.cs.CoreV1().Pods(v.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "main"}).Stream(context.Background())
	if err != nil {
		v.t.Fatalf("pods/log %s: %v", p.Name, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestKubeletRunsIndexedJob(t *testing.T) {
	v := newKubelet(t)
	host := t.TempDir()
	v.indexed("ok", 2, host, `echo "$RANK $JOB_COMPLETION_INDEX $WHO $POD $MASTER $HOSTNAME $(cat f) $OUT"; echo err >&2`, nil)
	j := v.ended("ok")
	if !hasCondition(&j.Status, batchv1.JobComplete) || j.Status.Succeeded != 2 || j.Status.CompletedIndexes != "0-1" || j.Status.Active != 0 {
		t.Fatalf("job status %+v\npods: %+v", j.Status, v.pods("ok"))
	}
	pods := v.pods("ok")
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2", len(pods))
	}
	for i := range 2 {
		p := pods[strconv.Itoa(i)]
		if p.Spec.Hostname != fmt.Sprintf("ok-%d", i) || p.Status.Phase != corev1.PodSucceeded || p.Status.ContainerStatuses[0].State.Terminated.ExitCode != 0 {
			t.Errorf("pod %d: hostname %q phase %s statuses %+v", i, p.Spec.Hostname, p.Status.Phase, p.Status.ContainerStatuses)
		}
		want := fmt.Sprintf("%d %d rank-%d %s 127.0.0.1 ok-%d from-init %s/out\nerr\n", i, i, i, p.Name, i, host)
		if got := v.log(p); got != want {
			t.Errorf("pod %d log %q, want %q", i, got, want)
		}
	}
}

func TestKubeletFailureStopsOthers(t *testing.T) {
	v := newKubelet(t)
	host := t.TempDir()
	v.indexed("bad", 2, host, `if [ "$RANK" = 1 ]; then sleep 0.3; exit 3; fi; echo $$$$ > $OUT; exec sleep 60`, nil)
	j := v.ended("bad")
	c := j.Status.Conditions[len(j.Status.Conditions)-1]
	if c.Type != batchv1.JobFailed || c.Reason != batchv1.JobReasonBackoffLimitExceeded || j.Status.Failed != 2 {
		t.Fatalf("job status %+v", j.Status)
	}
	// The other pod was stopped by the controller, and deleted once it had.
	if p, ok := v.pods("bad")["1"]; !ok || p.Status.ContainerStatuses[0].State.Terminated.ExitCode != 3 {
		t.Errorf("failed pod: %+v", p.Status)
	}
	pid, _ := os.ReadFile(filepath.Join(host, "out"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if n == 0 || syscall.Kill(n, 0) == nil {
		t.Errorf("rank 0's process %q still runs", pid)
	}
}

func TestKubeletOOMKilled(t *testing.T) {
	v := newKubelet(t)
	v.indexed("oom", 1, t.TempDir(), `echo allocating; kill -9 $$$$`, func(s *corev1.PodSpec) {
		s.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	})
	v.ended("oom")
	st := v.pods("oom")["0"].Status.ContainerStatuses[0].State.Terminated
	if st == nil || st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Fatalf("terminated state %+v, want OOMKilled 137", st)
	}
}

func TestKubeletJobDeletionStopsPods(t *testing.T) {
	v := newKubelet(t)
	host := t.TempDir()
	v.indexed("del", 1, host, `echo $$$$ > $OUT; echo started; exec sleep 60`, nil)
	ctx := context.Background()
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(host, "out"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pid == 0 {
		t.Fatal("the pod never started")
	}
	// Followed output arrives while the container runs.
	p := v.pods("del")["0"]
	rc, err := v.cs.CoreV1().Pods(v.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "main", Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, _ := io.ReadFull(rc, buf); string(buf[:n]) != "started\n" {
		t.Errorf("followed log %q", buf[:n])
	}
	bg := metav1.DeletePropagationBackground
	if err := v.cs.BatchV1().Jobs(v.ns).Delete(ctx, "del", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	// The follow ends with the container.
	if _, err := io.ReadAll(rc); err != nil {
		t.Errorf("follow: %v", err)
	}
	rc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, perr := v.cs.CoreV1().Pods(v.ns).Get(ctx, p.Name, metav1.GetOptions{})
		_, serr := v.cs.CoreV1().Services(v.ns).Get(ctx, "del", metav1.GetOptions{})
		if apierrors.IsNotFound(perr) && apierrors.IsNotFound(serr) {
			if syscall.Kill(pid, 0) == nil {
				t.Fatalf("process %d still runs after its pod was deleted", pid)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("pod or service still there after the Job was deleted")
}

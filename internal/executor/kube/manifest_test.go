package kube

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/forge-mlops/forge"
)

func testLaunch() *forge.Launch {
	return &forge.Launch{
		JobID: "j0198a3c0f2e1000100ab", Attempt: 2, Dir: "/srv/forge/work/x/code",
		Command: []string{"python3", "train.py", "--epochs", "3"},
		Env: map[string]string{
			"FORGE_SERVER": "http://127.0.0.1:8080", "MLFLOW_TRACKING_URI": "http://127.0.0.1:8080",
			"MLFLOW_RUN_ID": "r1", "FORGE_JOB_ID": "j0198a3c0f2e1000100ab",
		},
		Code: strings.Repeat("ab", 32), Image: "pytorch/pytorch:2.4",
		Resources: forge.Resources{CPUs: 3.5, MemoryBytes: 8 << 30, GPUs: 2},
		Nodes:     3, ProcsPerNode: 1,
	}
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, v := range c.Env {
		m[v.Name] = v
	}
	return m
}

func TestManifests(t *testing.T) {
	e := &Executor{cfg: Config{
		Namespace: "ml", Image: "default:1", ForgeImage: "forge:dev", ServerURL: "http://forge.ml.svc:8080",
		TokenSecret: "forge-token", ServiceAccount: "trainer", NodeSelector: map[string]string{"pool": "gpu"},
		Tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		MasterPort:  29500, TTLAfterFinished: 3600e9,
	}}
	l := testLaunch()
	job, svc, err := e.manifests(l)
	if err != nil {
		t.Fatal(err)
	}
	name := "forge-j0198a3c0f2e1000100ab-2"
	if job.Name != name || job.Namespace != "ml" || svc.Name != name {
		t.Fatalf("names: job %s/%s, service %s", job.Namespace, job.Name, svc.Name)
	}
	s := job.Spec
	if *s.CompletionMode != batchv1.IndexedCompletion || *s.Parallelism != 3 || *s.Completions != 3 || *s.BackoffLimit != 0 || *s.TTLSecondsAfterFinished != 3600 {
		t.Errorf("job spec: mode %v parallelism %d completions %d backoff %d ttl %d", *s.CompletionMode, *s.Parallelism, *s.Completions, *s.BackoffLimit, *s.TTLSecondsAfterFinished)
	}
	wantLabels := map[string]string{LabelManagedBy: "forge", LabelJobID: l.JobID, LabelAttempt: "2", LabelName: name}
	if d := cmp.Diff(wantLabels, job.Labels); d != "" {
		t.Errorf("job labels (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantLabels, s.Template.Labels); d != "" {
		t.Errorf("pod labels (-want +got):\n%s", d)
	}
	pod := s.Template.Spec
	if pod.Subdomain != name || pod.RestartPolicy != corev1.RestartPolicyNever || pod.ServiceAccountName != "trainer" || pod.NodeSelector["pool"] != "gpu" || len(pod.Tolerations) != 1 {
		t.Errorf("pod spec: subdomain %q restart %q sa %q selector %v tolerations %v", pod.Subdomain, pod.RestartPolicy, pod.ServiceAccountName, pod.NodeSelector, pod.Tolerations)
	}
	main := pod.Containers[0]
	if main.Image != "pytorch/pytorch:2.4" || !slices.Equal(main.Command, l.Command) || main.WorkingDir != CodeDir {
		t.Errorf("main container: image %q command %q dir %q", main.Image, main.Command, main.WorkingDir)
	}
	want := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("3500m"), corev1.ResourceMemory: resource.MustParse("8Gi"), GPUResource: resource.MustParse("2"),
	}
	for _, rl := range []corev1.ResourceList{main.Resources.Requests, main.Resources.Limits} {
		for k, q := range want {
			if got := rl[k]; got.Cmp(q) != 0 {
				t.Errorf("resource %s: got %s, want %s", k, got.String(), q.String())
			}
		}
	}
	env := envOf(main)
	for k, v := range map[string]string{
		"MASTER_ADDR": name + "-0." + name + ".ml.svc", "MASTER_PORT": "29500", "WORLD_SIZE": "3", "NNODES": "3",
		"NPROC_PER_NODE": "1", "LOCAL_RANK": "0", "PET_WORLD_SIZE": "3", "PET_MASTER_ADDR": name + "-0." + name + ".ml.svc",
		"FORGE_SERVER": "http://forge.ml.svc:8080", "MLFLOW_TRACKING_URI": "http://forge.ml.svc:8080", "MLFLOW_RUN_ID": "r1",
	} {
		if env[k].Value != v {
			t.Errorf("env %s = %q, want %q", k, env[k].Value, v)
		}
	}
	for _, k := range []string{"NODE_RANK", "RANK", "PET_NODE_RANK", "PET_RANK"} {
		if f := env[k].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			t.Errorf("env %s is not the completion index: %+v", k, env[k])
		}
	}
	if f := env["FORGE_TOKEN"].ValueFrom; f == nil || f.SecretKeyRef == nil || f.SecretKeyRef.Name != "forge-token" {
		t.Errorf("FORGE_TOKEN not from the secret: %+v", env["FORGE_TOKEN"])
	}
	if len(pod.InitContainers) != 1 {
		t.Fatalf("init containers: %d", len(pod.InitContainers))
	}
	ic := pod.InitContainers[0]
	wantCmd := []string{"forge", LaunchCommand, "fetch", "--bin", ForgeBinDir + "/forge", "--code", strings.Repeat("ab", 32), "--dir", CodeDir}
	if ic.Image != "forge:dev" || !slices.Equal(ic.Command, wantCmd) || envOf(ic)["FORGE_SERVER"].Value != "http://forge.ml.svc:8080" {
		t.Errorf("init container: image %q command %q env %v", ic.Image, ic.Command, ic.Env)
	}
	for _, c := range []corev1.Container{main, ic} {
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s may escalate privileges: %+v", c.Name, sc)
		}
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses || svc.Spec.Selector[LabelName] != name {
		t.Errorf("service: %+v", svc.Spec)
	}
}

func TestManifestsProcsPerNode(t *testing.T) {
	e := &Executor{cfg: Config{Namespace: "ml", Image: "img", ForgeImage: "forge:dev", MasterPort: 29500}}
	l := testLaunch()
	l.ProcsPerNode, l.Nodes = 4, 2
	l.Code = ""
	job, _, err := e.manifests(l)
	if err != nil {
		t.Fatal(err)
	}
	main := job.Spec.Template.Spec.Containers[0]
	want := append([]string{ForgeBinDir + "/forge", LaunchCommand, "run", "--procs", "4", "--gpus", "2", "--"}, l.Command...)
	if !slices.Equal(main.Command, want) {
		t.Errorf("command %q, want %q", main.Command, want)
	}
	env := envOf(main)
	if env["WORLD_SIZE"].Value != "8" || env["NPROC_PER_NODE"].Value != "4" {
		t.Errorf("WORLD_SIZE %q NPROC_PER_NODE %q", env["WORLD_SIZE"].Value, env["NPROC_PER_NODE"].Value)
	}
	if _, ok := env["RANK"]; ok {
		t.Error("RANK is set in the pod; the launcher sets it per process")
	}
	if main.WorkingDir != "" {
		t.Errorf("working dir %q without code", main.WorkingDir)
	}

	e.cfg.ForgeImage = ""
	if _, _, err := e.manifests(l); forge.KindOf(err) != forge.Invalid {
		t.Errorf("no forge image with 4 procs per node: %v", err)
	}
	l.ProcsPerNode = 1
	l.Image = ""
	e.cfg.Image = ""
	if _, _, err := e.manifests(l); forge.KindOf(err) != forge.Invalid {
		t.Errorf("no image: %v", err)
	}
}

// A job with dataset inputs and no code still gets the init container,
// which fetches the inputs into the code folder, and the processes find
// them there.
func TestManifestsInputs(t *testing.T) {
	e := &Executor{cfg: Config{Namespace: "ml", Image: "img", ForgeImage: "forge:dev", MasterPort: 29500}}
	l := testLaunch()
	l.Code = ""
	l.Inputs = []forge.Input{
		{Name: "train", Ref: "sales@3", Digest: strings.Repeat("cd", 32), Path: ".forge/inputs/train.parquet", Format: "parquet"},
		{Name: "eval", Ref: "sales@4", Digest: strings.Repeat("ef", 32), Path: ".forge/inputs/eval.csv", Format: "csv"},
	}
	job, _, err := e.manifests(l)
	if err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	if len(pod.InitContainers) != 1 {
		t.Fatalf("init containers: %d", len(pod.InitContainers))
	}
	want := []string{"forge", LaunchCommand, "fetch", "--bin", ForgeBinDir + "/forge",
		"--input", "path=.forge/inputs/train.parquet,ref=sales@3,format=parquet,sha256=" + strings.Repeat("cd", 32),
		"--input", "path=.forge/inputs/eval.csv,ref=sales@4,format=csv,sha256=" + strings.Repeat("ef", 32),
		"--dir", CodeDir}
	if got := pod.InitContainers[0].Command; !slices.Equal(got, want) {
		t.Errorf("init command\n%q\nwant\n%q", got, want)
	}
	for i, a := range want {
		if a == "--input" {
			in, err := ParseInputFlag(want[i+1])
			if err != nil || in != (forge.Input{Ref: l.Inputs[0].Ref, Digest: l.Inputs[0].Digest, Path: l.Inputs[0].Path, Format: "parquet"}) {
				t.Errorf("parse %q: %+v, %v", want[i+1], in, err)
			}
			break
		}
	}
	main := pod.Containers[0]
	env := envOf(main)
	if env["FORGE_INPUT_TRAIN"].Value != CodeDir+"/.forge/inputs/train.parquet" || env["FORGE_INPUT_EVAL"].Value != CodeDir+"/.forge/inputs/eval.csv" {
		t.Errorf("input env: %+v %+v", env["FORGE_INPUT_TRAIN"], env["FORGE_INPUT_EVAL"])
	}
	if main.WorkingDir != CodeDir {
		t.Errorf("working dir %q, want %q", main.WorkingDir, CodeDir)
	}
	e.cfg.ForgeImage = ""
	if _, _, err := e.manifests(l); forge.KindOf(err) != forge.Invalid {
		t.Errorf("inputs without a forge image to fetch them: %v", err)
	}
}

// An attempt that comes with its own token (the server's job token) gets
// it in every container, and not the shared Secret's.
func TestManifestJobToken(t *testing.T) {
	e := &Executor{cfg: Config{Namespace: "ml", Image: "default:1", ForgeImage: "forge:dev", ServerURL: "http://forge.ml.svc:8080",
		TokenSecret: "forge-token", MasterPort: 29500}}
	l := testLaunch()
	l.Env = map[string]string{"FORGE_TOKEN": "forge_job_abc", "MLFLOW_TRACKING_TOKEN": "forge_job_abc"}
	job, _, err := e.manifests(l)
	if err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		n := 0
		for _, v := range c.Env {
			if v.Name != "FORGE_TOKEN" && v.Name != "MLFLOW_TRACKING_TOKEN" {
				continue
			}
			n++
			if v.ValueFrom != nil || v.Value != "forge_job_abc" {
				t.Errorf("container %s: %s = %+v, want the attempt's token", c.Name, v.Name, v)
			}
		}
		if n == 0 {
			t.Errorf("container %s has no token", c.Name)
		}
	}
}

package kube

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forge-mlops/forge"
)

// GPUResource is the extended resource name of NVIDIA's device plugin.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// JobName is the Kubernetes name of a Forge job's attempt. Forge job ids are
// lowercase hex after a letter, so the name is a DNS label, and short enough
// for the pods' host names (<name>-<index>).
func JobName(jobID string, attempt int) string {
	return strings.ToLower(fmt.Sprintf("forge-%s-%d", jobID, attempt))
}

// manifests builds the Job and its headless Service for an attempt.
func (e *Executor) manifests(l *forge.Launch) (*batchv1.Job, *corev1.Service, error) {
	if len(l.Command) == 0 {
		return nil, nil, forge.Errorf(forge.Invalid, "command: must not be empty")
	}
	name := JobName(l.JobID, l.Attempt)
	if len(name) > 50 {
		return nil, nil, forge.Errorf(forge.Invalid, "job id %q is too long for a Kubernetes name", l.JobID)
	}
	image := l.Image
	if image == "" {
		image = e.cfg.Image
	}
	if image == "" {
		return nil, nil, forge.Errorf(forge.Invalid, "image: the job names none and the executor has no default image")
	}
	code := l.Code
	nodes, ppn := max(l.Nodes, 1), max(l.ProcsPerNode, 1)
	staged := code != "" || len(l.Inputs) > 0 // the init container fills CodeDir
	needForge := staged || ppn > 1
	if needForge && e.cfg.ForgeImage == "" {
		return nil, nil, forge.Errorf(forge.Invalid, "the executor has no forge image, needed to fetch code and inputs and to start %d processes per node", ppn)
	}
	ns := e.cfg.Namespace
	lbl := map[string]string{
		LabelManagedBy: ManagedBy,
		LabelJobID:     l.JobID,
		LabelAttempt:   strconv.Itoa(l.Attempt),
		LabelName:      name,
	}
	env := e.env(l, name, nodes, ppn)

	main := corev1.Container{
		Name:    MainContainer,
		Image:   image,
		Command: escapeRefs(l.Command),
		// A failed container's last lines become its exit's message.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		Env:                      env,
		Resources:                requirements(l.Resources),
		VolumeMounts:             []corev1.VolumeMount{{Name: "dshm", MountPath: "/dev/shm"}},
		Ports:                    []corev1.ContainerPort{{Name: "master", ContainerPort: int32(e.cfg.MasterPort)}},
		SecurityContext:          noEscalation(),
	}
	if ppn > 1 {
		main.Command = append([]string{ForgeBinDir + "/forge", LaunchCommand, "run", "--procs", strconv.Itoa(ppn), "--gpus", strconv.Itoa(l.Resources.GPUs), "--"}, main.Command...)
	}
	volumes := []corev1.Volume{{Name: "dshm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}}
	var inits []corev1.Container
	if needForge {
		args := []string{"forge", LaunchCommand, "fetch", "--bin", ForgeBinDir + "/forge"}
		if code != "" {
			args = append(args, "--code", code)
		}
		for _, in := range l.Inputs {
			args = append(args, "--input", InputFlag(in))
		}
		if staged {
			args = append(args, "--dir", CodeDir)
		}
		volumes = append(volumes,
			corev1.Volume{Name: "code", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			corev1.Volume{Name: "forge-bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts := []corev1.VolumeMount{{Name: "code", MountPath: CodeDir}, {Name: "forge-bin", MountPath: ForgeBinDir}}
		main.VolumeMounts = append(main.VolumeMounts, mounts...)
		inits = append(inits, corev1.Container{
			Name: InitContainer, Image: e.cfg.ForgeImage, Command: args,
			Env:             serverEnv(env),
			VolumeMounts:    mounts,
			SecurityContext: noEscalation(),
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
		})
		if staged {
			main.WorkingDir = CodeDir
		}
	}
	var pullSecrets []corev1.LocalObjectReference
	for _, s := range e.cfg.ImagePullSecrets {
		pullSecrets = append(pullSecrets, corev1.LocalObjectReference{Name: s})
	}
	n := int32(nodes)
	ttl := int32(e.cfg.TTLAfterFinished.Seconds())
	indexed := batchv1.IndexedCompletion
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbl},
		Spec: batchv1.JobSpec{
			CompletionMode:          &indexed,
			Parallelism:             &n,
			Completions:             &n,
			BackoffLimit:            new(int32(0)),
			TTLSecondsAfterFinished: &ttl,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{
					RestartPolicy:      corev1.RestartPolicyNever,
					Subdomain:          name,
					ServiceAccountName: e.cfg.ServiceAccount,
					NodeSelector:       e.cfg.NodeSelector,
					Tolerations:        e.cfg.Tolerations,
					ImagePullSecrets:   pullSecrets,
					InitContainers:     inits,
					Containers:         []corev1.Container{main},
					Volumes:            volumes,
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbl},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{LabelName: name},
			// Ranks meet before any of them is ready.
			PublishNotReadyAddresses: true,
			Ports:                    []corev1.ServicePort{{Name: "master", Port: int32(e.cfg.MasterPort)}},
		},
	}
	if l.Timeout > 0 {
		// The cluster stops the Job past the timeout even while Forge is
		// down; Forge's own supervisor stops it too (it ends as a timeout
		// either way, see status.go).
		secs := int64(math.Ceil(l.Timeout.Seconds()))
		job.Spec.ActiveDeadlineSeconds = &secs
	}
	return job, svc, nil
}

// env is the pods' environment: the job's, then the rank contract. The node
// rank comes from the pod's completion index through the downward API; with
// one process per node it is also the rank, otherwise the launcher sets
// RANK and LOCAL_RANK per process.
func (e *Executor) env(l *forge.Launch, name string, nodes, ppn int) []corev1.EnvVar {
	var env []corev1.EnvVar
	keys := make([]string, 0, len(l.Env))
	for k := range l.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := l.Env[k]
		if e.cfg.ServerURL != "" && (k == "FORGE_SERVER" || k == "MLFLOW_TRACKING_URI") {
			v = e.cfg.ServerURL
		}
		env = append(env, corev1.EnvVar{Name: k, Value: escapeRefs([]string{v})[0]})
	}
	inputs := l.InputEnv(CodeDir)
	for _, k := range slices.Sorted(maps.Keys(inputs)) {
		env = append(env, corev1.EnvVar{Name: k, Value: escapeRefs([]string{inputs[k]})[0]})
	}
	if e.cfg.ServerURL != "" && l.Env["FORGE_SERVER"] == "" {
		env = append(env, corev1.EnvVar{Name: "FORGE_SERVER", Value: e.cfg.ServerURL})
	}
	// The server's token for this attempt, when it gives one, comes in
	// l.Env; the shared Secret is for servers that give none.
	if e.cfg.TokenSecret != "" && l.Env["FORGE_TOKEN"] == "" {
		for _, k := range []string{"FORGE_TOKEN", "MLFLOW_TRACKING_TOKEN"} {
			env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: e.cfg.TokenSecret}, Key: "token"},
			}})
		}
	}
	index := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + AnnoCompletion + "']"}}
	static := []struct{ k, v string }{
		{"MASTER_ADDR", fmt.Sprintf("%s-0.%s.%s.svc", name, name, e.cfg.Namespace)},
		{"MASTER_PORT", strconv.Itoa(e.cfg.MasterPort)},
		{"WORLD_SIZE", strconv.Itoa(nodes * ppn)},
		{"NNODES", strconv.Itoa(nodes)},
		{"NPROC_PER_NODE", strconv.Itoa(ppn)},
		{"LOCAL_WORLD_SIZE", strconv.Itoa(ppn)},
	}
	if ppn == 1 {
		static = append(static, struct{ k, v string }{"LOCAL_RANK", "0"})
	}
	for _, prefix := range []string{"", "PET_"} {
		for _, s := range static {
			env = append(env, corev1.EnvVar{Name: prefix + s.k, Value: s.v})
		}
		env = append(env, corev1.EnvVar{Name: prefix + "NODE_RANK", ValueFrom: index})
		if ppn == 1 {
			env = append(env, corev1.EnvVar{Name: prefix + "RANK", ValueFrom: index})
		}
	}
	return env
}

// escapeRefs doubles every $: the kubelet expands $(VAR) and turns $$ into
// $ in a container's command and env values, and a job's command and env
// must reach its processes as written (`kill $$` in a script).
func escapeRefs(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strings.ReplaceAll(x, "$", "$$")
	}
	return out
}

// serverEnv is what the init container needs to fetch the code.
func serverEnv(env []corev1.EnvVar) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, v := range env {
		switch v.Name {
		case "FORGE_SERVER", "FORGE_TOKEN", "FORGE_JOB_ID":
			out = append(out, v)
		}
	}
	return out
}

// requirements asks for the node's share as both request and limit, so the
// pod is scheduled where it fits and is not starved by its neighbours.
func requirements(r forge.Resources) corev1.ResourceRequirements {
	list := corev1.ResourceList{}
	if r.CPUs > 0 {
		list[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(r.CPUs*1000+0.5), resource.DecimalSI)
	}
	if r.MemoryBytes > 0 {
		list[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryBytes, resource.BinarySI)
	}
	if r.GPUs > 0 {
		list[GPUResource] = *resource.NewQuantity(int64(r.GPUs), resource.DecimalSI)
	}
	if len(list) == 0 {
		return corev1.ResourceRequirements{}
	}
	return corev1.ResourceRequirements{Requests: list, Limits: list.DeepCopy()}
}

// noEscalation keeps a container from gaining privileges it did not start
// with (setuid binaries, file capabilities). Who it runs as is the image's
// user: runAsNonRoot would refuse the many images that run as root (the
// default python image among them).
func noEscalation() *corev1.SecurityContext {
	return &corev1.SecurityContext{AllowPrivilegeEscalation: new(false)}
}

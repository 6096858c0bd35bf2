package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The job controller's half of the kubelet: it plays kube-controller-manager
// for Indexed Jobs in the kubelet's namespace (pods per index up to
// parallelism, status counts and terminal conditions, active pods stopped
// when the Job fails or passes its deadline) and the garbage collector for
// what a deleted Job owned, as Background propagation asks.

const (
	jobNameLabel  = "batch.kubernetes.io/job-name"
	indexLabel    = batchv1.JobCompletionIndexAnnotation // also the annotation's key
	defaultBackof = 6
)

func (k *Kubelet) syncJob(ctx context.Context, name string) error {
	job, err := k.jobs.Jobs(k.cfg.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return k.collect(ctx, name)
	}
	if err != nil {
		return err
	}
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion || ptrOr(job.Spec.Suspend, false) {
		return nil // only Indexed Jobs are played
	}
	pods, err := k.podsOf(job)
	if err != nil {
		return err
	}
	completions := int(ptrOr(job.Spec.Completions, 1))
	parallelism := int(ptrOr(job.Spec.Parallelism, 1))
	backoff := int(ptrOr(job.Spec.BackoffLimit, defaultBackof))

	succeeded := map[int]bool{}
	taken := map[int]bool{} // an index with a pod that has not ended
	var active []*corev1.Pod
	failed, ready, terminating := 0, 0, 0
	for _, p := range pods {
		idx, _ := strconv.Atoi(p.Annotations[indexLabel])
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			succeeded[idx] = true
		case corev1.PodFailed:
			failed++
		default:
			taken[idx] = true
			if p.DeletionTimestamp != nil {
				terminating++
				continue
			}
			active = append(active, p)
			if p.Status.Phase == corev1.PodRunning {
				ready++
			}
		}
	}

	st := job.Status.DeepCopy()
	now := metav1.Now()
	if st.StartTime == nil {
		st.StartTime = &now
	}
	if finished(job) {
		k.stopPods(ctx, active)
		return nil
	}
	failReason, failMsg := "", ""
	if d := job.Spec.ActiveDeadlineSeconds; d != nil {
		left := time.Duration(*d)*time.Second - now.Sub(st.StartTime.Time)
		if left <= 0 {
			failReason, failMsg = batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline"
		} else {
			k.queue.AddAfter(name, left)
		}
	}
	if failReason == "" && failed > backoff {
		failReason, failMsg = batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit"
	}
	created := 0
	switch {
	case failReason != "":
		// As the real controller: FailureTarget first, the pods stopped,
		// then Failed once none is left running.
		if !hasCondition(st, batchv1.JobFailureTarget) {
			st.Conditions = append(st.Conditions, condition(batchv1.JobFailureTarget, failReason, failMsg, now))
		}
		k.stopPods(ctx, active)
		terminating += len(active)
		active, ready = nil, 0
		if terminating == 0 {
			st.Conditions = append(st.Conditions, condition(batchv1.JobFailed, failReason, failMsg, now))
		}
	case len(succeeded) >= completions:
		st.Conditions = append(st.Conditions,
			condition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods", now),
			condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods", now))
		st.CompletionTime = &now
	default:
		for i := 0; i < completions && len(active)+created < parallelism; i++ {
			if succeeded[i] || taken[i] {
				continue
			}
			if err := k.createPod(ctx, job, i); err != nil {
				return err
			}
			created++
		}
	}
	st.Active = int32(len(active) + created)
	st.Ready = new(int32(ready))
	st.Succeeded = int32(len(succeeded))
	st.Failed = int32(failed)
	st.CompletedIndexes = ranges(succeeded)
	if st.Terminating != nil || terminating > 0 {
		st.Terminating = new(int32(terminating))
	}
	if finishedStatus(st) {
		st.Active, st.Ready, st.Terminating = 0, new(int32(0)), nil
	}
	if statusEqual(&job.Status, st) {
		return nil
	}
	j := job.DeepCopy()
	j.Status = *st
	_, err = k.cs.BatchV1().Jobs(k.cfg.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// createPod makes the pod of one index as the job controller does: the
// index in an annotation, a label and JOB_COMPLETION_INDEX, the host name
// <job>-<index> under the Job's subdomain. Being the scheduler too, it binds
// the pod to this kubelet's node.
func (k *Kubelet) createPod(ctx context.Context, job *batchv1.Job, idx int) error {
	var b [3]byte
	rand.Read(b[:])
	ix := strconv.Itoa(idx)
	tpl := job.Spec.Template
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            fmt.Sprintf("%s-%d-%s", job.Name, idx, hex.EncodeToString(b[:])[:5]),
			Namespace:       job.Namespace,
			Labels:          map[string]string{jobNameLabel: job.Name, indexLabel: ix},
			Annotations:     map[string]string{indexLabel: ix},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: *tpl.Spec.DeepCopy(),
	}
	for key, v := range tpl.Labels {
		p.Labels[key] = v
	}
	for key, v := range tpl.Annotations {
		p.Annotations[key] = v
	}
	p.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, idx)
	p.Spec.NodeName = k.node
	index := corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['" + indexLabel + "']"}}}
	for i := range p.Spec.InitContainers {
		p.Spec.InitContainers[i].Env = append(p.Spec.InitContainers[i].Env, index)
	}
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Env = append(p.Spec.Containers[i].Env, index)
	}
	if _, err := k.cs.CoreV1().Pods(job.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s: %w", p.Name, err)
	}
	return nil
}

func (k *Kubelet) podsOf(job *batchv1.Job) ([]*corev1.Pod, error) {
	all, err := k.pods.Pods(job.Namespace).List(labels.SelectorFromSet(labels.Set{jobNameLabel: job.Name}))
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == job.UID {
			out = append(out, p)
		}
	}
	return out, nil
}

// stopPods deletes pods gracefully; their kubelet (this one) stops them.
func (k *Kubelet) stopPods(ctx context.Context, pods []*corev1.Pod) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		err := k.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			k.logf("delete pod %s: %v", p.Name, err)
		}
	}
}

// collect is the garbage collector for a deleted Job: its pods and the
// objects it owned (the headless Service) go too.
func (k *Kubelet) collect(ctx context.Context, name string) error {
	pods, err := k.cs.CoreV1().Pods(k.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: jobNameLabel + "=" + name})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			k.stopPods(ctx, []*corev1.Pod{&p})
		}
	}
	svcs, err := k.cs.CoreV1().Services(k.cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, s := range svcs.Items {
		if ref := metav1.GetControllerOf(&s); ref != nil && ref.Kind == "Job" && ref.Name == name {
			if err := k.cs.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

func finished(job *batchv1.Job) bool { return finishedStatus(&job.Status) }

func finishedStatus(st *batchv1.JobStatus) bool {
	return hasCondition(st, batchv1.JobComplete) || hasCondition(st, batchv1.JobFailed)
}

func hasCondition(st *batchv1.JobStatus, t batchv1.JobConditionType) bool {
	for _, c := range st.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func condition(t batchv1.JobConditionType, reason, msg string, now metav1.Time) batchv1.JobCondition {
	return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now}
}

// ranges writes indexes as the Job status does: "0-2,5".
func ranges(set map[int]bool) string {
	var xs []int
	for i := range set {
		xs = append(xs, i)
	}
	sort.Ints(xs)
	var parts []string
	for i := 0; i < len(xs); {
		j := i
		for j+1 < len(xs) && xs[j+1] == xs[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(xs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", xs[i], xs[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func statusEqual(a, b *batchv1.JobStatus) bool {
	return a.Active == b.Active && ptrOr(a.Ready, 0) == ptrOr(b.Ready, 0) && a.Succeeded == b.Succeeded && a.Failed == b.Failed &&
		ptrOr(a.Terminating, 0) == ptrOr(b.Terminating, 0) && a.CompletedIndexes == b.CompletedIndexes &&
		len(a.Conditions) == len(b.Conditions) && (a.StartTime == nil) == (b.StartTime == nil)
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

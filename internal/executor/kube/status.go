package kube

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/forge-mlops/forge"
)

// verdict says whether a Job has ended and how. Only the terminal
// conditions count (Complete, Failed): the job controller sets them once
// every pod has stopped, so the pods' exit codes are known by then.
func verdict(job *batchv1.Job, pods []*corev1.Pod) (forge.Exit, bool) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return forge.Exit{Code: 0, Reason: forge.ReasonExited}, true
		case batchv1.JobFailed:
			if c.Reason == batchv1.JobReasonDeadlineExceeded {
				return forge.Exit{Code: -1, Reason: forge.ReasonTimeout, Message: "past the Job's active deadline"}, true
			}
			if r := job.Annotations[AnnoStopReason]; r != "" {
				return forge.Exit{Code: -1, Reason: forge.Reason(r), Message: "stopped by forge (" + r + ")"}, true
			}
			exit := firstFailure(pods)
			if exit.Message == "" {
				exit.Message = strings.TrimSpace(c.Reason + ": " + c.Message)
			}
			return exit, true
		}
	}
	return forge.Exit{}, false
}

type podExit struct {
	index  string
	at     int64
	code   int
	reason forge.Reason
	msg    string
}

// firstFailure is the exit of the pod that failed first: its main
// container's code, OOMKilled as oom, a pod that lost its node or was
// evicted as lost.
func firstFailure(pods []*corev1.Pod) forge.Exit {
	var fails []podExit
	for _, p := range pods {
		idx := p.Annotations[AnnoCompletion]
		if idx == "" {
			idx = p.Labels[batchv1.JobCompletionIndexAnnotation]
		}
		switch {
		case p.Status.Reason == "NodeLost" || p.Status.Reason == "Evicted" || p.Status.Reason == "UnexpectedAdmissionError" || disrupted(p) && p.Status.Phase == corev1.PodFailed && mainState(p) == nil:
			fails = append(fails, podExit{index: idx, at: p.CreationTimestamp.UnixNano(), code: -1, reason: forge.ReasonLost,
				msg: strings.TrimSpace("pod " + p.Name + " " + p.Status.Reason + ": " + p.Status.Message)})
			continue
		}
		t := mainState(p)
		if t == nil || t.ExitCode == 0 {
			continue
		}
		pe := podExit{index: idx, at: t.FinishedAt.UnixNano(), code: int(t.ExitCode), reason: forge.ReasonExited, msg: launcherMessage(t.Message)}
		switch {
		case t.Reason == "OOMKilled":
			pe.reason, pe.msg = forge.ReasonOOM, "killed for using more memory than its limit"
		case t.Signal != 0:
			pe.reason = forge.ReasonSignal
		case t.ExitCode > 128 && t.ExitCode < 160 && t.Reason != "Completed" && t.Reason != "Error":
			pe.reason = forge.ReasonSignal
		}
		fails = append(fails, pe)
	}
	if len(fails) == 0 {
		return forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: "the Job failed and no pod says why"}
	}
	sort.Slice(fails, func(i, j int) bool {
		if fails[i].at != fails[j].at {
			return fails[i].at < fails[j].at
		}
		a, _ := strconv.Atoi(fails[i].index)
		b, _ := strconv.Atoi(fails[j].index)
		return a < b
	})
	f := fails[0]
	msg := f.msg
	if len(pods) > 1 && f.index != "" {
		msg = strings.TrimSpace(fmt.Sprintf("node %s: %s", f.index, msg))
	}
	return forge.Exit{Code: f.code, Reason: f.reason, Message: msg}
}

// launcherMessage picks, from a failed container's last lines (its
// termination message), the rank launcher's word on which rank failed.
func launcherMessage(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		if rest, ok := strings.CutPrefix(line, launcherPrefix); ok && strings.HasPrefix(rest, "rank ") {
			rest, _, _ = strings.Cut(rest, ":")
			return rest
		}
	}
	return strings.TrimSpace(msg)
}

func disrupted(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func mainState(p *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == MainContainer {
			if s.State.Terminated != nil {
				return s.State.Terminated
			}
			return s.LastTerminationState.Terminated
		}
	}
	return nil
}

// pending says why pods are not running yet, when a reason is known: the
// scheduler's (Unschedulable) or the kubelet's (ImagePullBackOff,
// ErrImagePull, CreateContainerConfigError, ...). Empty when nothing is
// stuck.
func pending(pods []*corev1.Pod) string {
	var msgs []string
	for _, p := range pods {
		if p.Status.Phase != corev1.PodPending && p.Status.Phase != "" {
			continue
		}
		var why string
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
				why = c.Reason + ": " + c.Message
			}
		}
		statuses := append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
		for _, s := range statuses {
			if w := s.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
				why = fmt.Sprintf("container %s %s: %s", s.Name, w.Reason, w.Message)
			}
		}
		if why != "" {
			msgs = append(msgs, "pod "+p.Name+" "+strings.TrimSpace(strings.TrimSuffix(why, ": ")))
		}
	}
	sort.Strings(msgs)
	return strings.Join(msgs, "; ")
}

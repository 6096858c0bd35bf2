package kubetest

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// podIPSeq numbers the pods given their own address, across kubelets.
var podIPSeq atomic.Int64

// podIP is a new pod's address: its own under PodIPs, in a 127.N.0.0/16
// picked by the process so that test binaries running at once do not
// share addresses.
func (k *Kubelet) podIP() string {
	if !k.cfg.PodIPs {
		return "127.0.0.1"
	}
	n := podIPSeq.Add(1)
	return fmt.Sprintf("127.%d.%d.%d", 100+os.Getpid()%100, n/250%250, n%250+1)
}

// deploymentLabel marks the pods made for a Deployment.
const deploymentLabel = "kubetest.forge/deployment"

// playDeployments plays the Deployment controller (with its ReplicaSets
// left out) and the scheduler in the kubelet's namespace: each Deployment
// gets spec.replicas pods from its template, owned by it and bound to this
// node; a pod that ends or goes is replaced, extra ones (after a scale
// down) are deleted, and status counts them. A changed template does not
// roll the pods: there is no rollout here. Under the Recreate strategy a
// pod is replaced once the old one is gone, not while it terminates (so
// the new one can take its port here).
func (k *Kubelet) playDeployments(ctx context.Context, f informers.SharedInformerFactory) {
	di := f.Apps().V1().Deployments()
	lister := di.Lister()
	kick := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke}
	di.Informer().AddEventHandler(h)
	f.Core().V1().Pods().Informer().AddEventHandler(h)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			}
			ds, err := lister.Deployments(k.cfg.Namespace).List(labels.Everything())
			if err != nil {
				continue
			}
			for _, d := range ds {
				if err := k.syncDeployment(ctx, d); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
					k.logf("sync deployment %s: %v", d.Name, err)
				}
			}
		}
	}()
}

func (k *Kubelet) syncDeployment(ctx context.Context, d *appsv1.Deployment) error {
	if d.DeletionTimestamp != nil {
		return nil
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	all, err := k.pods.Pods(d.Namespace).List(labels.SelectorFromSet(labels.Set{deploymentLabel: d.Name}))
	if err != nil {
		return err
	}
	var live []*corev1.Pod
	terminating := 0
	for _, p := range all {
		switch {
		case p.DeletionTimestamp != nil:
			terminating++
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			// Ended: gone, and replaced below.
			k.forget(ctx, p)
		default:
			live = append(live, p)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].CreationTimestamp.Before(&live[j].CreationTimestamp) })
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType && terminating > 0 {
		want = int32(len(live)) // for now
	}
	for i := int32(len(live)); i < want; i++ {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: d.Name + "-", Namespace: d.Namespace,
				Labels:          map[string]string{deploymentLabel: d.Name},
				Annotations:     d.Spec.Template.Annotations,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
			},
			Spec: *d.Spec.Template.Spec.DeepCopy(),
		}
		for key, v := range d.Spec.Template.Labels {
			p.Labels[key] = v
		}
		p.Spec.NodeName = k.node
		if _, err := k.cs.CoreV1().Pods(d.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod: %w", err)
		}
	}
	for i := len(live) - 1; i >= int(want); i-- {
		if err := k.cs.CoreV1().Pods(d.Namespace).Delete(ctx, live[i].Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	ready := int32(0)
	for _, p := range live {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	n := min(int32(len(live)), want)
	ready = min(ready, n)
	if d.Status.Replicas == n && d.Status.ReadyReplicas == ready && d.Status.ObservedGeneration == d.Generation {
		return nil
	}
	d = d.DeepCopy()
	d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UpdatedReplicas = n, ready, ready, n
	d.Status.ObservedGeneration = d.Generation
	_, err = k.cs.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return err
}

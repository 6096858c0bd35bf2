// Package kube is the executor that runs jobs on Kubernetes: one batch/v1
// Job per attempt (Indexed, one pod per node, backoffLimit 0 because Forge
// owns retries) and a headless Service that gives the index-0 pod the stable
// name used as MASTER_ADDR.
//
// Status comes from one shared informer on the Jobs and Pods that Forge
// labelled, never from a poll per job; waiters are woken by its events. A
// handle is the namespace and Job name, so a restarted server finds its
// attempts again; Jobs without Forge's labels, or that no handle names, are
// never touched. Pod output is followed through pods/log into a local file per
// attempt, which LogReader serves by byte offset.
//
// In the pod an init container (the Forge image) fetches the code bundle from
// the Forge server into /code and copies the forge binary next to it; with
// more than one process per node the main container runs `forge kube-launch`
// from there, which starts the local ranks (see launch.go).
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/forge-mlops/forge"
)

var (
	_ forge.Executor = (*Executor)(nil)
	_ forge.Attacher = (*Executor)(nil)
)

// Labels and annotations Forge puts on what it creates.
const (
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagedBy       = "forge"
	LabelJobID      = "forge.dev/job-id"
	LabelAttempt    = "forge.dev/attempt"
	LabelName       = "forge.dev/name" // the Kubernetes Job's name, also on its pods
	AnnoStopReason  = "forge.dev/stop-reason"
	AnnoCompletion  = "batch.kubernetes.io/job-completion-index"
	MainContainer   = "main"
	InitContainer   = "forge-init"
	CodeDir         = "/code"
	ForgeBinDir     = "/forge/bin"
	defaultPort     = 29500
	defaultTTL      = time.Hour
	defaultLogDrain = 5 * time.Second
)

// Config configures the Kubernetes executor.
type Config struct {
	// Namespace where Jobs are created; default "default".
	Namespace string
	// Image runs the job's command when the job names none.
	Image string
	// ForgeImage holds the forge binary (on PATH as "forge"); its init
	// container fetches the code bundle and provides the rank launcher.
	ForgeImage string
	// ServerURL is the Forge server as pods reach it; it replaces
	// FORGE_SERVER and MLFLOW_TRACKING_URI in the job's env (the server's
	// own address is often localhost). Empty: the env is kept.
	ServerURL string
	// TokenSecret names a Secret in Namespace whose key "token" becomes
	// FORGE_TOKEN and MLFLOW_TRACKING_TOKEN in the pods.
	TokenSecret      string
	ServiceAccount   string
	NodeSelector     map[string]string
	Tolerations      []corev1.Toleration
	ImagePullSecrets []string
	// MasterPort is MASTER_PORT; default 29500.
	MasterPort int
	// TTLAfterFinished lets Kubernetes delete a finished Job; default 1h.
	TTLAfterFinished time.Duration
	// LogDir keeps a local copy of each attempt's output.
	LogDir string
	// LogDrain bounds how long Wait waits for the last lines of output
	// after the Job ended; default 5s.
	LogDrain time.Duration
	Logger   *slog.Logger
}

// Executor runs attempts as Kubernetes Jobs.
type Executor struct {
	cfg Config
	cs  kubernetes.Interface
	log *slog.Logger

	startOnce sync.Once
	stop      chan struct{}
	synced    chan struct{}
	jobs      batchlisters.JobLister
	pods      corelisters.PodLister

	mu       sync.Mutex
	waiters  map[string]map[chan struct{}]struct{} // by Job name
	gone     map[string]*batchv1.Job               // last state of Jobs deleted while watched
	attempts map[string]*attempt                   // by Job name: output being followed
}

// handle is what forge.Handle holds, as JSON.
type handle struct {
	Namespace string `json:"ns"`
	Name      string `json:"name"`
	JobID     string `json:"job"`
	Attempt   int    `json:"attempt"`
	Procs     int    `json:"ppn,omitempty"` // processes per pod
}

// New makes an executor talking to the cluster at rc.
func New(cfg Config, rc *rest.Config) (*Executor, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.LogDir == "" {
		return nil, errors.New("kubernetes executor: log folder not set")
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("kubernetes executor: %w", err)
	}
	if cfg.MasterPort == 0 {
		cfg.MasterPort = defaultPort
	}
	if cfg.TTLAfterFinished == 0 {
		cfg.TTLAfterFinished = defaultTTL
	}
	if cfg.LogDrain == 0 {
		cfg.LogDrain = defaultLogDrain
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: %w", err)
	}
	return &Executor{
		cfg: cfg, cs: cs, log: cfg.Logger,
		stop: make(chan struct{}), synced: make(chan struct{}),
		waiters: map[string]map[chan struct{}]struct{}{}, gone: map[string]*batchv1.Job{},
		attempts: map[string]*attempt{},
	}, nil
}

// Close stops the watch and the log followers. The Jobs keep running.
func (e *Executor) Close() error {
	e.startOnce.Do(func() {}) // a watch never started is not started now
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	return nil
}

// watch starts, once, the one informer on Forge's Jobs and Pods.
func (e *Executor) watch() {
	e.startOnce.Do(func() {
		f := informers.NewSharedInformerFactoryWithOptions(e.cs, 0,
			informers.WithNamespace(e.cfg.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.LabelSelector = LabelManagedBy + "=" + ManagedBy
			}))
		ji, pi := f.Batch().V1().Jobs(), f.Core().V1().Pods()
		e.jobs, e.pods = ji.Lister(), pi.Lister()
		ji.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { e.jobEvent(o, false) },
			UpdateFunc: func(_, o any) { e.jobEvent(o, false) },
			DeleteFunc: func(o any) { e.jobEvent(o, true) },
		})
		pi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    e.podEvent,
			UpdateFunc: func(_, o any) { e.podEvent(o) },
			DeleteFunc: e.podEvent,
		})
		f.Start(e.stop)
		go func() {
			f.WaitForCacheSync(e.stop)
			close(e.synced)
		}()
	})
}

func (e *Executor) waitSynced(ctx context.Context) error {
	e.watch()
	select {
	case <-e.synced:
		return nil
	case <-e.stop:
		return errors.New("kubernetes executor: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Executor) jobEvent(o any, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	j, ok := o.(*batchv1.Job)
	if !ok {
		return
	}
	e.mu.Lock()
	if deleted {
		e.gone[j.Name] = j
	} else {
		delete(e.gone, j.Name)
	}
	e.mu.Unlock()
	e.notify(j.Name)
}

func (e *Executor) podEvent(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	name := p.Labels[LabelName]
	e.mu.Lock()
	a := e.attempts[name]
	e.mu.Unlock()
	if a != nil {
		a.podChanged(e, p)
	}
	e.notify(name)
}

func (e *Executor) notify(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.waiters[name] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (e *Executor) subscribe(name string) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	e.mu.Lock()
	if e.waiters[name] == nil {
		e.waiters[name] = map[chan struct{}]struct{}{}
	}
	e.waiters[name][ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		delete(e.waiters[name], ch)
		if len(e.waiters[name]) == 0 {
			delete(e.waiters, name)
		}
		e.mu.Unlock()
	}
}

func parseHandle(h forge.Handle) (*handle, error) {
	var v handle
	if err := json.Unmarshal([]byte(h), &v); err != nil || v.Name == "" || v.Namespace == "" {
		return nil, fmt.Errorf("kubernetes executor: malformed handle %q", h)
	}
	return &v, nil
}

func (e *Executor) check(h *handle) error {
	if h.Namespace != e.cfg.Namespace {
		return forge.Errorf(forge.Invalid, "job %s ran in namespace %s; this executor watches %s", h.JobID, h.Namespace, e.cfg.Namespace)
	}
	return nil
}

// Start implements forge.Starter: it creates the Job, then its Service
// (owned by the Job, so it goes when the Job goes).
func (e *Executor) Start(ctx context.Context, l *forge.Launch) (forge.Handle, error) {
	e.watch()
	job, svc, err := e.manifests(l)
	if err != nil {
		return "", err
	}
	h := &handle{Namespace: e.cfg.Namespace, Name: job.Name, JobID: l.JobID, Attempt: l.Attempt, Procs: max(l.ProcsPerNode, 1)}
	created, err := e.cs.BatchV1().Jobs(job.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A start that was cut short before its handle was stored: a Job
		// of this attempt may be half set up. Start afresh.
		return "", forge.Errorf(forge.Conflict, "a Kubernetes Job %s/%s already exists for job %s attempt %d", job.Namespace, job.Name, l.JobID, l.Attempt)
	}
	if err != nil {
		return "", fmt.Errorf("create Kubernetes Job for %s: %w", l.JobID, err)
	}
	svc.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(created, batchv1.SchemeGroupVersion.WithKind("Job"))}
	if _, err := e.cs.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		e.delete(context.WithoutCancel(ctx), h)
		return "", fmt.Errorf("create headless Service for %s: %w", l.JobID, err)
	}
	if err := e.follow(h); err != nil {
		return "", err
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	e.log.Info("started Kubernetes Job", "job", l.JobID, "attempt", l.Attempt, "name", job.Name, "namespace", job.Namespace)
	return forge.Handle(b), nil
}

// Attach implements forge.Attacher: it follows the attempt's output again.
func (e *Executor) Attach(ctx context.Context, fh forge.Handle) error {
	h, err := parseHandle(fh)
	if err != nil {
		return err
	}
	if err := e.check(h); err != nil {
		return err
	}
	e.watch()
	return e.follow(h)
}

// Wait implements forge.Waiter from the informer's cache: it is woken by
// events on the attempt's Job and pods.
func (e *Executor) Wait(ctx context.Context, fh forge.Handle) (forge.Exit, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return forge.Exit{}, err
	}
	if err := e.check(h); err != nil {
		return forge.Exit{}, err
	}
	ch, unsubscribe := e.subscribe(h.Name)
	defer unsubscribe()
	if err := e.waitSynced(ctx); err != nil {
		return forge.Exit{}, err
	}
	if err := e.follow(h); err != nil {
		return forge.Exit{}, err
	}
	checked := false
	for {
		exit, done, err := e.evaluate(ctx, h, &checked)
		if err != nil {
			return forge.Exit{}, err
		}
		if done {
			e.catchUp(ctx, h)
			e.drain(h.Name)
			return exit, nil
		}
		select {
		case <-ctx.Done():
			return forge.Exit{}, ctx.Err()
		case <-e.stop:
			return forge.Exit{}, errors.New("kubernetes executor: closed")
		case <-ch:
		}
	}
}

// evaluate says whether the attempt has ended, and how. A Job missing from
// the cache is looked up once in the API (the informer may not have seen a
// Job created a moment ago); one that is not there either is lost.
func (e *Executor) evaluate(ctx context.Context, h *handle, checked *bool) (forge.Exit, bool, error) {
	job, err := e.jobs.Jobs(h.Namespace).Get(h.Name)
	if apierrors.IsNotFound(err) {
		e.mu.Lock()
		last := e.gone[h.Name]
		e.mu.Unlock()
		if last != nil {
			return e.deletedVerdict(last, h), true, nil
		}
		if !*checked {
			*checked = true
			_, err := e.cs.BatchV1().Jobs(h.Namespace).Get(ctx, h.Name, metav1.GetOptions{})
			if err == nil {
				return forge.Exit{}, false, nil // the informer will see it
			}
			if !apierrors.IsNotFound(err) {
				return forge.Exit{}, false, fmt.Errorf("look up Kubernetes Job %s: %w", h.Name, err)
			}
		}
		return forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: fmt.Sprintf("Kubernetes Job %s/%s is gone", h.Namespace, h.Name)}, true, nil
	}
	if err != nil {
		return forge.Exit{}, false, err
	}
	pods, err := e.pods.Pods(h.Namespace).List(labelsFor(h.Name))
	if err != nil {
		return forge.Exit{}, false, err
	}
	exit, done := verdict(job, pods)
	if !done {
		if msg := pending(pods); msg != "" {
			e.note(h.Name, msg)
		}
	}
	return exit, done, nil
}

// ended says whether the job controller has given the Job its terminal
// condition.
func ended(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// catchUp follows the output of every pod of an ended attempt. The Job's
// and the pods' events come on separate watches, so the Job's end can be
// seen before a short-lived pod ever was: one list at the end, not a poll.
func (e *Executor) catchUp(ctx context.Context, h *handle) {
	e.mu.Lock()
	a := e.attempts[h.Name]
	e.mu.Unlock()
	if a == nil {
		return
	}
	pods, err := e.cs.CoreV1().Pods(h.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labelsFor(h.Name).String()})
	if err != nil {
		e.log.Warn("list the pods of an ended attempt", "name", h.Name, "err", err)
		return
	}
	for i := range pods.Items {
		a.podChanged(e, &pods.Items[i])
	}
}

// deletedVerdict is the end of a Job that was deleted: by Forge (the stop
// reason is on it), or by someone else (lost), unless it had ended before.
func (e *Executor) deletedVerdict(last *batchv1.Job, h *handle) forge.Exit {
	pods, _ := e.pods.Pods(h.Namespace).List(labelsFor(h.Name))
	if exit, done := verdict(last, pods); done {
		return exit
	}
	if r := last.Annotations[AnnoStopReason]; r != "" {
		return forge.Exit{Code: -1, Reason: forge.Reason(r), Message: "stopped by forge (" + r + ")"}
	}
	return forge.Exit{Code: -1, Reason: forge.ReasonLost, Message: fmt.Sprintf("Kubernetes Job %s/%s was deleted outside Forge", h.Namespace, h.Name)}
}

// Cancel implements forge.Canceller: it records the reason on the Job, then
// deletes it with background propagation, so Kubernetes stops the pods
// (SIGTERM, then SIGKILL after their grace period).
func (e *Executor) Cancel(ctx context.Context, fh forge.Handle, reason forge.Reason) error {
	h, err := parseHandle(fh)
	if err != nil {
		return err
	}
	if err := e.check(h); err != nil {
		return err
	}
	// The first reason wins: a timeout during a cancel stays a cancel.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, AnnoStopReason, reason)
	job, err := e.cs.BatchV1().Jobs(h.Namespace).Get(ctx, h.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", h.JobID, err)
	}
	if job.Labels[LabelJobID] != h.JobID {
		return forge.Errorf(forge.Conflict, "Kubernetes Job %s/%s is not job %s's", h.Namespace, h.Name, h.JobID)
	}
	if ended(job) {
		// Deleting it, or marking it, would change how it ended: for
		// this server (a stop reason) and for a restarted one (no Job).
		return nil
	}
	if job.Annotations[AnnoStopReason] == "" {
		if _, err := e.cs.BatchV1().Jobs(h.Namespace).Patch(ctx, h.Name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("cancel job %s: record reason: %w", h.JobID, err)
		}
	}
	return e.delete(ctx, h)
}

func (e *Executor) delete(ctx context.Context, h *handle) error {
	bg := metav1.DeletePropagationBackground
	err := e.cs.BatchV1().Jobs(h.Namespace).Delete(ctx, h.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Kubernetes Job %s: %w", h.Name, err)
	}
	return nil
}

// Describe says where the attempt stands, with the reason its pods are
// pending (unschedulable, image pull errors) when they are.
func (e *Executor) Describe(ctx context.Context, fh forge.Handle) (string, error) {
	h, err := parseHandle(fh)
	if err != nil {
		return "", err
	}
	if err := e.waitSynced(ctx); err != nil {
		return "", err
	}
	job, err := e.jobs.Jobs(h.Namespace).Get(h.Name)
	if err != nil {
		return "", forge.Errorf(forge.NotFound, "no Kubernetes Job %s/%s", h.Namespace, h.Name)
	}
	pods, _ := e.pods.Pods(h.Namespace).List(labelsFor(h.Name))
	if exit, done := verdict(job, pods); done {
		return fmt.Sprintf("ended: %s (exit code %d) %s", exit.Reason, exit.Code, exit.Message), nil
	}
	if msg := pending(pods); msg != "" {
		return "pending: " + msg, nil
	}
	return fmt.Sprintf("%d of %d pods running", job.Status.Active, ptrOr(job.Spec.Parallelism, 1)), nil
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func (e *Executor) logPath(name string) string {
	return filepath.Join(e.cfg.LogDir, e.cfg.Namespace, name+".log")
}

func labelsFor(name string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelName: name})
}

// RESTConfig loads the cluster's address and credentials from a kubeconfig
// file, or, with an empty path, from the pod Forge runs in.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes executor: no kubeconfig given and not in a cluster: %w", err)
		}
		return rc, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes executor: load kubeconfig %s: %w", kubeconfig, err)
	}
	return rc, nil
}

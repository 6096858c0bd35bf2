package deploy

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/forge-mlops/forge/internal/kubetest"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestMain(m *testing.M) {
	code := sqlstoretest.Main(m)
	kubetest.Stop()
	os.Exit(code)
}

// render renders the chart as `helm install forge deploy/helm/forge -n ns`
// with vals, and returns its objects in Helm's install order.
func render(t *testing.T, ns string, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	ch, err := loader.LoadDir("helm/forge")
	if err != nil {
		t.Fatal(err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "forge", Namespace: ns, IsInstall: true, Revision: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatal(err)
	}
	// As helm install: the notes are printed, not applied.
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 0 {
		t.Fatalf("the chart has %d hooks; none are expected", len(hooks))
	}
	var objs []*unstructured.Unstructured
	for _, m := range manifests {
		j, err := yaml.YAMLToJSON([]byte(m.Content))
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v\n%s", m.Name, err, m.Content)
		}
		objs = append(objs, u)
	}
	return objs
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			j, _ := o.MarshalJSON()
			reflect.ValueOf(into).Elem().SetZero()
			if err := json.Unmarshal(j, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s %s in %q", kind, name, kinds(objs))
}

// TestChartRenders checks the objects of the default values and of the
// switches: autoscaling off, a ServiceMonitor, an external server.
func TestChartRenders(t *testing.T) {
	objs := render(t, "ml", nil)
	want := []string{"Deployment/forge-serve", "Deployment/forge-server", "HorizontalPodAutoscaler/forge-serve",
		"PodDisruptionBudget/forge-serve", "Service/forge-serve", "Service/forge-server"}
	if got := kinds(objs); !slices.Equal(got, want) {
		t.Fatalf("objects %q, want %q", got, want)
	}
	var serve, server appsv1.Deployment
	find(t, objs, "Deployment", "forge-serve", &serve)
	find(t, objs, "Deployment", "forge-server", &server)
	if serve.Spec.Replicas != nil {
		t.Errorf("with the HPA on, the Deployment sets replicas %d (an upgrade would reset the HPA's count)", *serve.Spec.Replicas)
	}
	c := serve.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" || c.LivenessProbe.HTTPGet.Path != "/v2/health/live" {
		t.Errorf("serve probes %s, %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	if g := serve.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 5 {
		t.Errorf("serve grace period %v: too short for the 2s drain", g)
	}
	if !slices.Contains(c.Args, "--server=http://$(FORGE_SERVER_HOST):7700") {
		t.Errorf("serve args %q do not follow the release's server", c.Args)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		} else {
			env[e.Name] = e.Value
		}
	}
	if env["FORGE_TOKEN"] != "forge-admin/token" || env["FORGE_SERVER_HOST"] != "forge-server.ml.svc" {
		t.Errorf("serve env %v", env)
	}
	if server.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *server.Spec.Replicas != 1 {
		t.Errorf("server: strategy %s, replicas %d: one server per bucket, replaced not rolled", server.Spec.Strategy.Type, *server.Spec.Replicas)
	}
	senv := map[string]string{}
	for _, e := range server.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil {
			senv[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	if senv["FORGE_DB"] != "secret:forge-db/url" || senv["FORGE_ADMIN_TOKEN"] != "secret:forge-admin/token" {
		t.Errorf("server secrets %v", senv)
	}
	if _, ok := senv["AWS_ACCESS_KEY_ID"]; ok {
		t.Errorf("S3 credentials without server.blob: %v", senv)
	}
	s3 := render(t, "ml", map[string]any{"server": map[string]any{"blob": "s3://b/p"}})
	find(t, s3, "Deployment", "forge-server", &server)
	n := 0
	for _, e := range server.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name == "forge-s3" || e.Name == "FORGE_BLOB" && e.Value == "s3://b/p" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("with server.blob: %d of FORGE_BLOB and the two S3 credentials from forge-s3", n)
	}
	// Replicas read the bucket with the same settings, unless told not to.
	for _, read := range []bool{true, false} {
		objs := render(t, "ml", map[string]any{"server": map[string]any{"blob": "s3://b/p"}, "serve": map[string]any{"readBucket": read}})
		find(t, objs, "Deployment", "forge-serve", &serve)
		n := 0
		for _, e := range serve.Spec.Template.Spec.Containers[0].Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "forge-s3" || e.Name == "FORGE_BLOB" && e.Value == "s3://b/p" {
				n++
			}
		}
		if want := map[bool]int{true: 3, false: 0}[read]; n != want {
			t.Errorf("serve.readBucket %v: replicas get %d of FORGE_BLOB and the two S3 credentials, want %d", read, n, want)
		}
	}

	fixed := render(t, "ml", map[string]any{"serve": map[string]any{"autoscaling": map[string]any{"enabled": false}, "replicas": 3}})
	if got := kinds(fixed); slices.Contains(got, "HorizontalPodAutoscaler/forge-serve") {
		t.Errorf("autoscaling off still makes an HPA: %q", got)
	}
	find(t, fixed, "Deployment", "forge-serve", &serve)
	if serve.Spec.Replicas == nil || *serve.Spec.Replicas != 3 {
		t.Errorf("autoscaling off: replicas %v, want 3", serve.Spec.Replicas)
	}

	mon := render(t, "ml", map[string]any{"serviceMonitor": map[string]any{"enabled": true}})
	if got := kinds(mon); !slices.Contains(got, "ServiceMonitor/forge") {
		t.Errorf("serviceMonitor.enabled makes no ServiceMonitor: %q", got)
	}

	cfg := map[string]any{"executors": []any{map[string]any{"name": "k8s", "type": "kubernetes",
		"kubernetes": map[string]any{"namespace": "ml-jobs", "image": "python:3.11"}}}}
	jobs := render(t, "ml", map[string]any{"server": map[string]any{"config": cfg,
		"kubernetesJobs": map[string]any{"enabled": true, "namespace": "ml-jobs"}, "podAnnotations": map[string]any{"a": "b"}}})
	for _, k := range []string{"ConfigMap/forge-server", "ServiceAccount/forge-server", "Role/forge-server-jobs", "RoleBinding/forge-server-jobs"} {
		if !slices.Contains(kinds(jobs), k) {
			t.Errorf("with server.config and kubernetesJobs: no %s in %q", k, kinds(jobs))
		}
	}
	var cm corev1.ConfigMap
	find(t, jobs, "ConfigMap", "forge-server", &cm)
	var back map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["forge.yaml"]), &back); err != nil || !reflect.DeepEqual(back, cfg) {
		t.Errorf("forge.yaml in the ConfigMap is %q (%v), want server.config", cm.Data["forge.yaml"], err)
	}
	var role rbacv1.Role
	find(t, jobs, "Role", "forge-server-jobs", &role)
	if role.Namespace != "ml-jobs" || len(role.Rules) == 0 {
		t.Errorf("jobs Role in %q with %d rules", role.Namespace, len(role.Rules))
	}
	var js appsv1.Deployment
	find(t, jobs, "Deployment", "forge-server", &js)
	ps := js.Spec.Template.Spec
	if ps.ServiceAccountName != "forge-server" || !slices.Contains(ps.Containers[0].Args, "--config=/etc/forge/forge.yaml") ||
		js.Spec.Template.Annotations["a"] != "b" || js.Spec.Template.Annotations["checksum/config"] == "" {
		t.Errorf("server with config and jobs: account %q, args %q, annotations %v", ps.ServiceAccountName, ps.Containers[0].Args, js.Spec.Template.Annotations)
	}

	plain := render(t, "ml", map[string]any{"server": map[string]any{"config": cfg}})
	var ps2 appsv1.Deployment
	find(t, plain, "Deployment", "forge-server", &ps2)
	if ps2.Spec.Template.Annotations["checksum/config"] == "" || ps2.Spec.Template.Spec.ServiceAccountName != "" {
		t.Errorf("server with config only: annotations %v, account %q", ps2.Spec.Template.Annotations, ps2.Spec.Template.Spec.ServiceAccountName)
	}

	ext := render(t, "ml", map[string]any{"server": map[string]any{"enabled": false},
		"serve": map[string]any{"serverURL": "https://forge.example.com"}})
	if got := kinds(ext); slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, "forge-server") }) {
		t.Errorf("server.enabled false still makes the server: %q", got)
	}
	find(t, ext, "Deployment", "forge-serve", &serve)
	if !slices.Contains(serve.Spec.Template.Spec.Containers[0].Args, "--server=https://forge.example.com") {
		t.Errorf("serve args %q", serve.Spec.Template.Spec.Containers[0].Args)
	}
}

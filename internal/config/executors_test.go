package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/forge-mlops/forge/internal/config"
)

func TestExecutorsDefault(t *testing.T) {
	c, err := load(nil, env())
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Executor{{Name: "local", Kind: config.KindLocal}}
	if diff := cmp.Diff(want, c.Executors); diff != "" {
		t.Errorf("default executors (-want +got):\n%s", diff)
	}
	if got := c.DefaultExecutorName(); got != "local" {
		t.Errorf("default executor %q, want local", got)
	}
}

func TestExecutorsFromFile(t *testing.T) {
	c, err := load([]string{"--config", "testdata/executors-good.yaml"}, env())
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Executor{
		{Name: "local", Kind: config.KindLocal},
		{Name: "hpc", Kind: config.KindSlurm, Slurm: &config.Slurm{
			SharedDir: "/shared/forge", Partition: "gpu", Account: "ml", TimeLimit: 24 * time.Hour,
			SbatchArgs: []string{"--constraint=a100"},
		}},
		{Name: "k8s", Kind: config.KindKubernetes, Kubernetes: &config.Kubernetes{
			Namespace: "ml", Image: "python:3.11", ForgeImage: "forge:dev", NodeSelector: map[string]string{"pool": "gpu"},
		}},
	}
	if diff := cmp.Diff(want, c.Executors); diff != "" {
		t.Errorf("executors (-want +got):\n%s", diff)
	}
	if got := c.DefaultExecutorName(); got != "hpc" {
		t.Errorf("default executor %q, want hpc", got)
	}
	// The environment and flags pick another default among them.
	c, err = load([]string{"--config", "testdata/executors-good.yaml"}, env("FORGE_DEFAULT_EXECUTOR=k8s"))
	if err != nil || c.DefaultExecutorName() != "k8s" {
		t.Errorf("FORGE_DEFAULT_EXECUTOR=k8s: %q, %v", c.DefaultExecutorName(), err)
	}
	c, err = load([]string{"--config", "testdata/executors-good.yaml", "--default-executor", "local"}, env("FORGE_DEFAULT_EXECUTOR=k8s"))
	if err != nil || c.DefaultExecutorName() != "local" {
		t.Errorf("--default-executor local: %q, %v", c.DefaultExecutorName(), err)
	}
}

// Without default_executor the first entry is the default, so a file that
// lists only a cluster needs no more.
func TestExecutorsFirstIsDefault(t *testing.T) {
	c := config.Default()
	c.Executors = []config.Executor{{Name: "hpc", Kind: config.KindSlurm, Slurm: &config.Slurm{SharedDir: "/s"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.DefaultExecutorName(); got != "hpc" {
		t.Errorf("default executor %q, want hpc", got)
	}
}

func TestBadExecutors(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  []string
		want string
	}{
		{"executor-bad-kind.yaml", nil, "executors[1].kind"},
		{"executor-bad-name.yaml", nil, "executors[0].name"},
		{"executor-duplicate.yaml", nil, "executors[1].name"},
		{"executor-slurm-relative-dir.yaml", nil, "executors[0].slurm.shared_dir"},
		{"executor-slurm-no-settings.yaml", nil, "executors[0].slurm"},
		{"executor-kube-no-settings.yaml", nil, "executors[0].kubernetes"},
		{"executor-local-with-slurm.yaml", nil, "executors[0]"},
		{"executor-unknown-default.yaml", nil, "default_executor"},
		{"executor-empty-list.yaml", nil, "executors"},
		{"executor-unknown-field.yaml", nil, "partitions"},
		{"executor-bad-time-limit.yaml", nil, "time_limit"},
		{"executors-good.yaml", []string{"FORGE_DEFAULT_EXECUTOR=nowhere"}, "default_executor"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := load([]string{"--config", "testdata/" + tc.file}, env(tc.env...))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %q", msg, tc.want)
			}
		})
	}
}

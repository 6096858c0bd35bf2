package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"time"
)

// Executor is one entry of the `executors:` list: a named place where jobs
// run. A job picks one with `forge run --executor NAME`; without it, the
// server's default_executor (or the first entry) runs it.
//
//	executors:
//	  - name: local
//	    kind: local
//	  - name: hpc
//	    kind: slurm
//	    slurm:
//	      shared_dir: /shared/forge
//	      partition: gpu
//	      account: ml
//	      time_limit: 24h
//	      sbatch_args: ["--constraint=a100"]
//	  - name: k8s
//	    kind: kubernetes
//	    kubernetes:
//	      namespace: ml
//	      image: python:3.11
type Executor struct {
	Name       string      `yaml:"name"`
	Kind       string      `yaml:"kind"` // local, slurm or kubernetes
	Slurm      *Slurm      `yaml:"slurm,omitempty"`
	Kubernetes *Kubernetes `yaml:"kubernetes,omitempty"`
}

// Executor kinds.
const (
	KindLocal      = "local"
	KindSlurm      = "slurm"
	KindKubernetes = "kubernetes"
)

// Slurm holds the settings of a Slurm executor (slurm.Config).
type Slurm struct {
	// SharedDir is a folder every node reads at the same path; attempts
	// (code, batch script, log) are staged there.
	SharedDir string `yaml:"shared_dir"`
	Partition string `yaml:"partition"`
	Account   string `yaml:"account"`
	QOS       string `yaml:"qos"`
	// TimeLimit is every job's --time; zero: the partition's default.
	TimeLimit time.Duration `yaml:"time_limit"`
	// SbatchArgs are more #SBATCH lines, e.g. "--constraint=a100".
	SbatchArgs []string `yaml:"sbatch_args"`
	// SlurmConf, if set, is SLURM_CONF for the Slurm commands.
	SlurmConf string `yaml:"slurm_conf"`
	// Poll is how often running jobs are looked at (one squeue call for all); default 2s.
	Poll time.Duration `yaml:"poll"`
}

// Kubernetes holds the settings of a Kubernetes executor (kube.Config).
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file; empty: in-cluster config.
	Kubeconfig       string            `yaml:"kubeconfig"`
	Namespace        string            `yaml:"namespace"`
	Image            string            `yaml:"image"`
	ForgeImage       string            `yaml:"forge_image"`
	ServerURL        string            `yaml:"server_url"`
	TokenSecret      string            `yaml:"token_secret"`
	ServiceAccount   string            `yaml:"service_account"`
	NodeSelector     map[string]string `yaml:"node_selector"`
	ImagePullSecrets []string          `yaml:"image_pull_secrets"`
}

// DefaultExecutors is what a server without `executors:` has: this machine.
func DefaultExecutors() []Executor {
	return []Executor{{Name: "local", Kind: KindLocal}}
}

var executorName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateExecutors reports the first bad entry of `executors:`, and a
// default that names none of them.
func ValidateExecutors(list []Executor, defaultName string) error {
	if len(list) == 0 {
		return &FieldError{"executors", "want at least one (a local one: {name: local, kind: local})"}
	}
	seen := map[string]bool{}
	for i, e := range list {
		field := fmt.Sprintf("executors[%d]", i)
		if !executorName.MatchString(e.Name) {
			return &FieldError{field + ".name", fmt.Sprintf("%q: want lowercase letters, digits, - and _", e.Name)}
		}
		if seen[e.Name] {
			return &FieldError{field + ".name", fmt.Sprintf("%q is used twice", e.Name)}
		}
		seen[e.Name] = true
		switch e.Kind {
		case KindLocal:
			if e.Slurm != nil || e.Kubernetes != nil {
				return &FieldError{field, "a local executor takes no slurm or kubernetes settings"}
			}
		case KindSlurm:
			if e.Slurm == nil {
				return &FieldError{field + ".slurm", "a slurm executor needs its settings (shared_dir at least)"}
			}
			if e.Kubernetes != nil {
				return &FieldError{field + ".kubernetes", "not for a slurm executor"}
			}
			if !filepath.IsAbs(e.Slurm.SharedDir) {
				return &FieldError{field + ".slurm.shared_dir", fmt.Sprintf("%q: want an absolute path that every node reads", e.Slurm.SharedDir)}
			}
			if e.Slurm.TimeLimit < 0 || e.Slurm.Poll < 0 {
				return &FieldError{field + ".slurm", "time_limit and poll must not be negative"}
			}
		case KindKubernetes:
			if e.Kubernetes == nil {
				return &FieldError{field + ".kubernetes", "a kubernetes executor needs its settings"}
			}
			if e.Slurm != nil {
				return &FieldError{field + ".slurm", "not for a kubernetes executor"}
			}
		default:
			return &FieldError{field + ".kind", fmt.Sprintf("%q: want local, slurm or kubernetes", e.Kind)}
		}
	}
	if defaultName != "" && !seen[defaultName] {
		return &FieldError{"default_executor", fmt.Sprintf("%q is not in executors", defaultName)}
	}
	return nil
}

// Package procenv builds the environment of the processes Forge starts for
// others (jobs, predictors): never the server's own, which holds its
// settings and credentials (FORGE_DB with its password, tokens), only the
// few variables a program needs to run (PATH, HOME, LANG, TMPDIR) plus
// what the caller adds (the job spec's variables and the contract's:
// MLFLOW_*, FORGE_JOB_ID, FORGE_INPUT_*, rank variables, CUDA_VISIBLE_DEVICES).
package procenv

import (
	"os"
	"strings"
)

// Inherited are the server's variables a started process keeps.
var Inherited = []string{"PATH", "HOME", "LANG", "TMPDIR"}

// Base returns Inherited as set in the server's environment, then the
// server's variables whose names start with one of keep (for the Slurm
// client's own SLURM_* settings, say), as KEY=VALUE.
func Base(keep ...string) []string {
	var env []string
	for _, k := range Inherited {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if len(keep) == 0 {
		return env
	}
	for _, kv := range os.Environ() {
		for _, p := range keep {
			if strings.HasPrefix(kv, p) {
				env = append(env, kv)
				break
			}
		}
	}
	return env
}

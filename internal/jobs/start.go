package jobs

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/bundle"
)

func (s *Service) attemptDir(id string, attempt int) string {
	return filepath.Join(s.cfg.WorkDir, id, strconv.Itoa(attempt))
}

// jobTokenName names the token of a job's attempt.
func jobTokenName(id string, attempt int) string { return "job-" + id + "-" + strconv.Itoa(attempt) }

// jobTokenGrace is how long a job's token outlives the job's timeout, as a
// bound should its end never be recorded; the end deletes it at once.
const jobTokenGrace = time.Hour

// dropToken ends the token of an attempt, if it has one.
func (s *Service) dropToken(ctx context.Context, id string, attempt int) {
	if s.cfg.Tokens == nil {
		return
	}
	if err := s.cfg.Tokens.DeleteJobToken(context.WithoutCancel(ctx), jobTokenName(id, attempt)); err != nil {
		s.log.Error("delete the job's token", "job", id, "attempt", attempt, "err", err)
	}
}

func (s *Service) start(ctx context.Context, j Job) (h forge.Handle, err error) {
	dir := s.attemptDir(j.ID, j.Attempt)
	code := filepath.Join(dir, "code")
	os.RemoveAll(dir)
	if err := os.MkdirAll(code, 0o755); err != nil {
		return "", fmt.Errorf("create job folder: %w", err)
	}
	if j.Spec.Code != "" {
		r, err := s.blobs.Open(ctx, forge.Digest(j.Spec.Code))
		if err != nil {
			return "", fmt.Errorf("open code bundle: %w", err)
		}
		err = bundle.Extract(r, code)
		r.Close()
		if bundle.IsInvalid(err) {
			return "", forge.Errorf(forge.Invalid, "%v", err)
		}
		if err != nil {
			return "", fmt.Errorf("extract code bundle: %w", err)
		}
	}
	env := map[string]string{}
	for k, v := range j.Spec.Env {
		env[k] = v
	}
	tags := map[string]string{}
	for k, v := range j.Spec.Tags {
		tags[k] = v
	}
	tags["forge.job_id"] = j.ID
	inputs, err := s.materialize(ctx, j, code)
	if err != nil {
		return "", err
	}
	for _, in := range inputs {
		tags["forge.input."+in.Name] = in.Ref + " sha256:" + in.Digest
	}
	if s.runs != nil {
		if j.RunID == "" {
			runID, expID, err := s.runs.CreateRun(ctx, j.Spec.Experiment, j.Name, tags)
			if err != nil {
				return "", fmt.Errorf("create tracking run: %w", err)
			}
			if err := s.st.setRun(ctx, j.ID, runID, expID); err != nil {
				return "", err
			}
			j.RunID, j.ExperimentID = runID, expID
		}
		for _, in := range inputs {
			if err := s.runs.LogInput(ctx, j.RunID, in.Name, in.Ref, in.Digest); err != nil {
				return "", fmt.Errorf("record input %s: %w", in.Name, err)
			}
		}
		if err := s.runs.SetRunStatus(ctx, j.RunID, "RUNNING"); err != nil {
			s.log.Warn("set run status", "job", j.ID, "err", err)
		}
		env["MLFLOW_RUN_ID"], env["MLFLOW_EXPERIMENT_ID"] = j.RunID, j.ExperimentID
		if s.cfg.Tokens != nil {
			ttl, _ := j.Spec.TimeoutDuration()
			if ttl > 0 {
				ttl += jobTokenGrace
			}
			secret, err := s.cfg.Tokens.CreateJobToken(ctx, jobTokenName(j.ID, j.Attempt), j.RunID, ttl)
			if err != nil {
				return "", fmt.Errorf("create the job's token: %w", err)
			}
			defer func() {
				if err != nil {
					s.dropToken(ctx, j.ID, j.Attempt)
				}
			}()
			// A token the spec sets itself (one that may do more) is its
			// owner's choice and stays.
			for _, k := range []string{"MLFLOW_TRACKING_TOKEN", "FORGE_TOKEN"} {
				if _, set := j.Spec.Env[k]; !set {
					env[k] = secret
				}
			}
		}
		if s.cfg.TrackingURI != "" {
			env["MLFLOW_TRACKING_URI"] = s.cfg.TrackingURI
		}
	}
	if s.cfg.TrackingURI != "" {
		env["FORGE_SERVER"] = s.cfg.TrackingURI
	}
	if s.cfg.PythonPath != "" {
		env["PYTHONPATH"] = strings.TrimSuffix(s.cfg.PythonPath+":"+env["PYTHONPATH"], ":")
	}
	env["FORGE_JOB_ID"] = j.ID
	env["FORGE_ATTEMPT"] = strconv.Itoa(j.Attempt)
	timeout, _ := j.Spec.TimeoutDuration()
	return s.execs[j.Executor].Start(ctx, &forge.Launch{
		JobID: j.ID, Attempt: j.Attempt, Dir: code, Command: j.Spec.Command, Env: env,
		Resources: j.Spec.Resources(), Nodes: j.Spec.Nodes, ProcsPerNode: j.Spec.ProcsPerNode,
		Image: j.Spec.Image, Code: j.Spec.Code, Timeout: timeout, Inputs: inputs,
	})
}

// inputsDir is where a job's inputs are written, relative to its code
// folder. Inside the code folder, the inputs travel with the code wherever
// an executor stages it (Slurm's shared folder), and have a path that is
// the same relative to the working directory on every executor.
const inputsDir = ".forge/inputs"

// materialize writes each input of j under code/inputsDir. The executor
// tells the processes where they are (FORGE_INPUT_<NAME>).
func (s *Service) materialize(ctx context.Context, j Job, code string) ([]forge.Input, error) {
	var inputs []forge.Input
	for _, name := range slices.Sorted(maps.Keys(j.Spec.Inputs)) {
		ref := j.Spec.Inputs[name]
		format := "parquet"
		if strings.HasSuffix(ref, ":csv") {
			format = "csv" // for code without a Parquet reader
		}
		rel := inputsDir + "/" + name + "." + format
		path := filepath.Join(code, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create inputs folder: %w", err)
		}
		resolved, digest, err := s.datasets.Materialize(ctx, ref, path)
		if k := forge.KindOf(err); k == forge.NotFound || k == forge.Invalid {
			// The spec's fault (no such dataset or version; Submit checked
			// it, so it was removed since): the job fails saying which
			// input, as a job that cannot run as written.
			return nil, forge.WrapError(forge.Invalid, err, "input %s=%s: %s", name, ref, forge.Message(err))
		}
		if err != nil {
			return nil, fmt.Errorf("input %s=%s: %w", name, ref, err)
		}
		inputs = append(inputs, forge.Input{Name: name, Ref: resolved, Digest: digest, Path: rel, Format: format})
	}
	return inputs, nil
}

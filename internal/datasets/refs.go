package datasets

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

// Runs returns the tracking runs that used v: those that logged it as an
// input with its digest (MLflow log-inputs, bare or as "sha256:<digest>"),
// and those a job started with it as an input (tag forge.input.NAME).
func (s *Service) Runs(ctx context.Context, v Version) ([]RunUse, error) {
	rows, err := s.db.Query(ctx, `SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, i.context
		FROM run_inputs i JOIN runs r ON r.run_uuid = i.run_uuid
		WHERE i.dataset_digest IN (?, ?)
		UNION
		SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, 'job'
		FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid
		WHERE t.key LIKE 'forge.input.%' AND t.value LIKE ?`,
		v.Digest, "sha256:"+v.Digest, "% sha256:"+v.Digest)
	if err != nil {
		return nil, fmt.Errorf("find runs of %s: %w", v.Ref(), err)
	}
	defer rows.Close()
	out := []RunUse{}
	seen := map[string]bool{}
	for rows.Next() {
		var u RunUse
		var exp int64
		if err := rows.Scan(&u.RunID, &u.RunName, &exp, &u.Status, &u.StartTime, &u.Context); err != nil {
			return nil, fmt.Errorf("find runs of %s: %w", v.Ref(), err)
		}
		if seen[u.RunID] {
			continue
		}
		seen[u.RunID] = true
		u.ExperimentID = fmt.Sprint(exp)
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartTime > out[j].StartTime })
	return out, rows.Err()
}

// Show returns a version and the runs that used it.
func (s *Service) Show(ctx context.Context, ref string) (Version, []RunUse, error) {
	v, err := s.Get(ctx, ref)
	if err != nil {
		return Version{}, nil, err
	}
	runs, err := s.Runs(ctx, v)
	return v, runs, err
}

// users lists what still needs v: runs that used it, queued or running jobs
// that will read it, and registered model versions made by those runs.
func (s *Service) users(ctx context.Context, v Version, latest bool) ([]string, error) {
	var out []string
	runs, err := s.Runs(ctx, v)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		out = append(out, "run "+r.RunID)
	}
	if len(runs) > 0 && s.db.HasTable(ctx, "model_versions") {
		ids := make([]any, len(runs))
		for i, r := range runs {
			ids[i] = r.RunID
		}
		rows, err := s.db.Query(ctx, `SELECT m.name, v.version FROM model_versions v JOIN registered_models m ON m.id = v.model_id
			WHERE v.run_id IN (`+sqlstore.Placeholders(len(ids))+`)`, ids...)
		if err != nil {
			return nil, fmt.Errorf("find models of %s: %w", v.Ref(), err)
		}
		for rows.Next() {
			var name string
			var ver int64
			if err := rows.Scan(&name, &ver); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, fmt.Sprintf("model %s version %d", name, ver))
		}
		rows.Close()
	}
	if s.db.HasTable(ctx, "jobs") {
		rows, err := s.db.Query(ctx, "SELECT id, spec FROM jobs WHERE state IN ('queued', 'running')")
		if err != nil {
			return nil, fmt.Errorf("find jobs of %s: %w", v.Ref(), err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, spec string
			if err := rows.Scan(&id, &spec); err != nil {
				return nil, err
			}
			var js struct {
				Inputs map[string]string `json:"inputs"`
			}
			if json.Unmarshal([]byte(spec), &js) != nil {
				continue
			}
			for _, ref := range js.Inputs {
				r, err := ParseRef(ref)
				if err == nil && r.Name == v.Name && (r.Version == v.Version || (r.Version == 0 && latest)) {
					out = append(out, "job "+id)
					break
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Remove deletes the metadata of the version ref names, or of every
// version when ref has none. A version that a run, a job or a model still
// references is a Conflict unless force is set. Blobs stay: another version,
// dataset or artifact may hold the same bytes.
func (s *Service) Remove(ctx context.Context, ref string, force bool) ([]Version, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	var victims []Version
	all := !strings.Contains(ref, "@")
	if all {
		victims, err = s.Versions(ctx, r.Name)
	} else {
		var v Version
		v, err = s.st.get(ctx, r)
		victims = []Version{v}
	}
	if err != nil {
		return nil, err
	}
	if !force {
		latest, err := s.st.get(ctx, Ref{Name: r.Name})
		if err != nil {
			return nil, err
		}
		for _, v := range victims {
			users, err := s.users(ctx, v, v.Version == latest.Version)
			if err != nil {
				return nil, err
			}
			if len(users) > 0 {
				more := ""
				if len(users) > 5 {
					more = fmt.Sprintf(" and %d more", len(users)-5)
					users = users[:5]
				}
				return nil, forge.Errorf(forge.Conflict, "dataset %s is in use by %s%s: remove with --force to delete it anyway",
					v.Ref(), strings.Join(users, ", "), more)
			}
		}
	}
	nums := make([]int64, len(victims))
	for i, v := range victims {
		nums[i] = v.Version
	}
	if err := s.st.remove(ctx, r.Name, nums, all); err != nil {
		return nil, err
	}
	s.log.Info("dataset removed", "ref", ref, "versions", nums, "force", force)
	return victims, nil
}

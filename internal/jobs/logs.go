package jobs

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/forge-mlops/forge"
)

// Logs writes an attempt's log to w (attempt 0: the latest, and with
// follow, the ones after it too). With follow it returns when the job has
// ended and all its output is written, or ctx ends.
func (s *Service) Logs(ctx context.Context, id string, attempt int, follow bool, w io.Writer) error {
	flush := func() {
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
	}
	j, err := s.st.get(ctx, id)
	if err != nil {
		return err
	}
	if attempt < 0 {
		return forge.Errorf(forge.Invalid, "attempt %d: want a number from 1 (0: every attempt)", attempt)
	}
	all := attempt == 0
	if all {
		attempt = max(j.Attempt, 1)
	} else if attempt > j.Attempt {
		return forge.Errorf(forge.NotFound, "job %s has no attempt %d", id, attempt)
	}
	var off int64
	for {
		j, err = s.st.get(ctx, id)
		if err != nil {
			return err
		}
		var a *Attempt
		if attempt <= len(j.Attempts) {
			a = &j.Attempts[attempt-1]
		}
		switch {
		case a != nil && a.FinishedAt != 0:
			// A follower that read the whole log from the executor while
			// the attempt ran is done with it: skipping to its offset in the
			// blob would read (and hash) all of it again.
			if a.LogDigest != "" && (off < a.LogSize || a.LogSize == 0) {
				if err := s.copyBlob(ctx, a.LogDigest, off, w); err != nil {
					return err
				}
			}
			flush()
			if !follow || !all || j.State.Final() || j.Attempt == attempt && j.State == Queued && j.CancelRequested {
				return nil
			}
			// A retry follows: wait for it and go on with its log.
			for j.Attempt == attempt && !j.State.Final() {
				if err := sleep(ctx, 100*time.Millisecond); err != nil {
					return err
				}
				if j, err = s.st.get(ctx, id); err != nil {
					return err
				}
			}
			if j.Attempt == attempt {
				return nil
			}
			attempt, off = attempt+1, 0
			fmt.Fprintf(w, "--- forge: attempt %d ---\n", attempt)
			continue
		case a != nil && a.Handle != "" && s.execs[a.Executor] != nil:
			if r, err := s.execs[a.Executor].Logs(ctx, a.Handle, off); err == nil {
				n, err := io.Copy(w, r)
				r.Close()
				off += n
				if err != nil {
					return err
				}
				if n > 0 {
					flush()
					continue
				}
			}
		}
		if !follow {
			return nil
		}
		if j.State.Final() && (a == nil || a.FinishedAt != 0) {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (s *Service) copyBlob(ctx context.Context, d string, off int64, w io.Writer) error {
	r, err := s.blobs.Open(ctx, forge.Digest(d))
	if err != nil {
		return fmt.Errorf("open job log: %w", err)
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, off); err != nil && err != io.EOF {
		return err
	}
	_, err = io.Copy(w, r)
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func describe(r forge.Resources) string {
	return fmt.Sprintf("%g CPUs, %d MiB memory, %d GPUs", r.CPUs, r.MemoryBytes>>20, r.GPUs)
}

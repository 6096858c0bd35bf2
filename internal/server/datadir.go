package server

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// shared are the data dir's entries that jobs running as another user need:
// their folders, and the Python client on their PYTHONPATH.
var shared = map[string]os.FileMode{"jobs": 0o711, "python": 0}

// lockDataDir keeps the data dir to the server's user: others may pass
// through it (0711: a job reaches its folder under jobs/) but neither list
// it nor open anything else in it (the database, its WAL, blobs, tmp,
// executor state are 0700 or 0600). SQLite creates its WAL and shared
// memory files with the database's mode, so they stay private too. Entries
// made later inside a 0700 folder are out of reach whatever their mode.
func lockDataDir(dir string) error {
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("lock data dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lock data dir: %w", err)
	}
	for _, e := range ents {
		mode, keep := shared[e.Name()]
		switch {
		case keep && mode == 0:
			continue
		case keep:
		case e.IsDir():
			mode = 0o700
		case e.Type().IsRegular():
			mode = 0o600
		default:
			continue // a link: chmod would change what it points to
		}
		if err := os.Chmod(filepath.Join(dir, e.Name()), mode); err != nil {
			return fmt.Errorf("lock data dir: %w", err)
		}
	}
	return nil
}

// jobsRoot is where job folders and the Python client live: the data dir
// when a job's user can pass through every folder above it, else a folder
// of the server's own in the system temp dir (0711, named after the data
// dir), so that a data dir under /root or a 0700 temp folder still runs
// jobs as run_as without opening the data dir's parents to everyone.
func jobsRoot(dataDir, jobUser string) (root string, moved bool, err error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", false, err
	}
	if jobUser == "" || othersPass(filepath.Dir(abs)) {
		return abs, false, nil
	}
	sum := sha256.Sum256([]byte(abs))
	root = filepath.Join(os.TempDir(), fmt.Sprintf("forge-jobs-%x", sum[:6]))
	if err := os.Mkdir(root, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", false, fmt.Errorf("jobs folder: %w", err)
	}
	// The temp dir is everyone's: take the folder only if it is a real
	// folder of ours, not one (or a link) someone made before us.
	fi, err := os.Lstat(root)
	if err != nil {
		return "", false, fmt.Errorf("jobs folder: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return "", false, fmt.Errorf("jobs folder %s exists and is not the server's own folder: remove it, or give data_dir a path whose parents let others through (o+x)", root)
	}
	if err := os.Chmod(root, 0o711); err != nil {
		return "", false, fmt.Errorf("jobs folder: %w", err)
	}
	return root, true, nil
}

// othersPass says whether every folder from dir up lets others through.
func othersPass(dir string) bool {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}

package server

import (
	"fmt"
	"os"
	"path/filepath"
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

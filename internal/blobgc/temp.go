package blobgc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// TempAge is how long nothing in a temporary entry must have changed
// before forge gc removes it. Uploads write as bytes arrive and are cut
// after a minute without one, DuckDB spills only during a query, so an
// hour of stillness means the process that made it is gone (killed, or
// failed before its cleanup ran).
const TempAge = time.Hour

// TempReport is what a sweep of temporary folders found and removed.
type TempReport struct {
	Entries int   // files and folders at the top of the temporary folders
	Bytes   int64 // their size
}

// SweepTemp removes, from each of dirs, the entries (a file, or a folder
// with everything in it) in which nothing was modified for olderThan; with
// olderThan 0 it removes every entry, which is right at start, before
// anything can be writing. The folders themselves stay; a missing one is
// empty. With dryRun it removes nothing and reports what it would.
func SweepTemp(dirs []string, olderThan time.Duration, dryRun bool) (TempReport, error) {
	var rep TempReport
	cutoff := time.Now().Add(-olderThan)
	var errs []error
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep temporary files: %w", err))
			continue
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			newest, size := newestIn(p)
			if olderThan > 0 && !newest.Before(cutoff) {
				continue
			}
			if !dryRun {
				if err := os.RemoveAll(p); err != nil {
					errs = append(errs, fmt.Errorf("remove temporary %s: %w", p, err))
					continue
				}
			}
			rep.Entries++
			rep.Bytes += size
		}
	}
	return rep, errors.Join(errs...)
}

// newestIn returns the latest modification time of p and anything under it,
// and the size of its files. An entry that cannot be read counts as new, so
// it is kept.
func newestIn(p string) (time.Time, int64) {
	var newest time.Time
	var size int64
	err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		if info.Mode().IsRegular() {
			size += info.Size()
		}
		return nil
	})
	if err != nil {
		return time.Now(), size
	}
	return newest, size
}

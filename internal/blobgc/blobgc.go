// Package blobgc removes the blobs nothing refers to any more: content of
// overwritten or deleted artifacts, deleted model versions and dataset
// versions. Blobs are shared by content, so deleting a record never deletes
// its blob; a sweep does, once no record refers to it.
//
// A blob is garbage when no Referrer lists it and it was last stored before
// the grace period: a blob just stored may not have its record yet (an
// upload, then the job or version that uses it). Storing content again
// renews it (blob.Local.Put touches it), and the store's RemoveIfOlder
// checks the time again under its lock, so a blob that is handed out while
// a sweep runs stays.
package blobgc

import (
	"context"
	"fmt"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/api"
)

// MinGrace is the shortest grace period a sweep takes.
const MinGrace = time.Minute

// Referrer is a component that records blob digests.
type Referrer interface {
	// BlobRefs calls keep with every blob the component refers to.
	BlobRefs(ctx context.Context, keep func(forge.Digest)) error
}

// Store is what a sweep needs of the blob store.
type Store interface {
	List(ctx context.Context, prefix string) ([]forge.BlobInfo, error)
	RemoveIfOlder(d forge.Digest, t time.Time) (removed bool, size int64, err error)
}

// Report is what a sweep found and did.
type Report = api.GCReport

// Sweep lists the blobs, then asks every referrer what it still needs, and
// removes (unless dryRun) the blobs none needs that were last stored more
// than grace ago. The listing comes first, so a blob stored during the
// sweep is not in it.
func Sweep(ctx context.Context, store Store, refs []Referrer, grace time.Duration, dryRun bool) (Report, error) {
	if grace < MinGrace {
		return Report{}, forge.Errorf(forge.Invalid, "grace period %s is shorter than the minimum of %s", grace, MinGrace)
	}
	cutoff := time.Now().Add(-grace)
	rep := Report{DryRun: dryRun, Grace: grace.String()}
	blobs, err := store.List(ctx, "")
	if err != nil {
		return rep, err
	}
	keep := map[forge.Digest]bool{}
	for _, r := range refs {
		if err := r.BlobRefs(ctx, func(d forge.Digest) { keep[d] = true }); err != nil {
			return rep, fmt.Errorf("collect blob references: %w", err)
		}
	}
	for _, b := range blobs {
		rep.Blobs++
		rep.Bytes += b.Size
		switch {
		case keep[b.Digest]:
			rep.Referenced++
		case !b.ModTime.Before(cutoff):
			rep.Young++
		default:
			rep.Garbage++
			rep.GarbageBytes += b.Size
			if dryRun {
				continue
			}
			removed, size, err := store.RemoveIfOlder(b.Digest, cutoff)
			if err != nil {
				return rep, err
			}
			if removed {
				rep.Removed++
				rep.RemovedBytes += size
			}
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

package blobgc_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/blobgc"
)

// refs is a Referrer over a fixed list (an injected function, for the unit test).
type refs struct {
	ds  []forge.Digest
	err error
}

func (r refs) BlobRefs(ctx context.Context, keep func(forge.Digest)) error {
	for _, d := range r.ds {
		keep(d)
	}
	return r.err
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	store, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(s string, age time.Duration) forge.Digest {
		t.Helper()
		info, err := store.Put(ctx, strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := store.Path(info.Digest)
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return info.Digest
	}
	used := put("used by a record", 72*time.Hour)
	alsoUsed := put("used by another", 72*time.Hour)
	garbage := put("nobody's", 48*time.Hour)
	young := put("just uploaded, record to come", time.Minute)
	all := []blobgc.Referrer{refs{ds: []forge.Digest{used}}, refs{ds: []forge.Digest{alsoUsed}}}
	exists := func(d forge.Digest) bool {
		_, err := store.Stat(ctx, d)
		return err == nil
	}

	rep, err := blobgc.Sweep(ctx, store, all, 24*time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 4 || rep.Referenced != 2 || rep.Young != 1 || rep.Garbage != 1 || rep.GarbageBytes != int64(len("nobody's")) || rep.Removed != 0 || !exists(garbage) {
		t.Fatalf("dry run: %+v", rep)
	}

	// A referrer that fails stops the sweep before anything is removed.
	failing := append(all, refs{err: errors.New("database gone")})
	if _, err := blobgc.Sweep(ctx, store, failing, 24*time.Hour, false); err == nil || !exists(garbage) {
		t.Fatalf("sweep with a failing referrer: %v (garbage still there: %v)", err, exists(garbage))
	}

	rep, err = blobgc.Sweep(ctx, store, all, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed != 1 || rep.RemovedBytes != int64(len("nobody's")) || exists(garbage) || !exists(used) || !exists(alsoUsed) || !exists(young) {
		t.Fatalf("sweep: %+v; garbage %v used %v %v young %v", rep, exists(garbage), exists(used), exists(alsoUsed), exists(young))
	}

	if _, err := blobgc.Sweep(ctx, store, all, time.Second, false); !forge.IsKind(err, forge.Invalid) {
		t.Fatalf("a one-second grace: %v, want Invalid", err)
	}
}

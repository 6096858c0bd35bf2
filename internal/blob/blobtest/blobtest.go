// Package blobtest is the conformance suite every forge.BlobStore passes.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
)

// Run checks the BlobStore contract on a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) forge.BlobStore) {
	ctx := context.Background()
	sum := func(b []byte) forge.Digest { h := sha256.Sum256(b); return forge.Digest(hex.EncodeToString(h[:])) }

	t.Run("PutGetStat", func(t *testing.T) {
		s := open(t)
		data := bytes.Repeat([]byte("forge "), 100000)
		info, err := s.Put(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if info.Digest != sum(data) || info.Size != int64(len(data)) {
			t.Fatalf("put: %+v, want digest %s size %d", info, sum(data), len(data))
		}
		rc, err := s.Open(ctx, info.Digest)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get: %d bytes, err %v", len(got), err)
		}
		st, err := s.Stat(ctx, info.Digest)
		if err != nil || st.Size != info.Size {
			t.Fatalf("stat: %+v %v", st, err)
		}
		again, err := s.Put(ctx, bytes.NewReader(data))
		if err != nil || again.Digest != info.Digest {
			t.Fatalf("second put: %+v %v", again, err)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		info, err := s.Put(ctx, strings.NewReader(""))
		if err != nil || info.Size != 0 || info.Digest != sum(nil) {
			t.Fatalf("empty put: %+v %v", info, err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		missing := sum([]byte("nope"))
		if _, err := s.Open(ctx, missing); forge.KindOf(err) != forge.NotFound {
			t.Fatalf("open missing: %v", err)
		}
		if _, err := s.Stat(ctx, missing); forge.KindOf(err) != forge.NotFound {
			t.Fatalf("stat missing: %v", err)
		}
		if err := s.Delete(ctx, missing); err != nil {
			t.Fatalf("delete missing: %v", err)
		}
		if _, err := s.Open(ctx, "../../etc/passwd"); forge.KindOf(err) != forge.Invalid {
			t.Fatalf("open bad digest: %v", err)
		}
	})
	t.Run("Concurrency", func(t *testing.T) { RunConcurrency(t, open(t)) })
	t.Run("Range", func(t *testing.T) {
		s := open(t)
		rr, ok := s.(forge.BlobRangeReader)
		if !ok {
			t.Fatalf("%T does not read ranges (forge.BlobRangeReader)", s)
		}
		data := make([]byte, 100000)
		for i := range data {
			data[i] = byte(i * 13)
		}
		info, err := s.Put(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range [][2]int64{{0, 1}, {99999, 1}, {12345, 50000}, {0, 100000}, {500, 0}} {
			rc, err := rr.OpenRange(ctx, info.Digest, c[0], c[1])
			if err != nil {
				t.Fatalf("range %v: %v", c, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data[c[0]:c[0]+c[1]]) {
				t.Fatalf("range %v: %d bytes, %v", c, len(got), err)
			}
		}
		if _, err := rr.OpenRange(ctx, sum([]byte("nope")), 0, 1); forge.KindOf(err) != forge.NotFound {
			t.Fatalf("range of a missing blob: %v", err)
		}
	})
	t.Run("DeleteAndList", func(t *testing.T) {
		s := open(t)
		var ds []forge.Digest
		for _, v := range []string{"a", "b", "c", "d", "e"} {
			info, err := s.Put(ctx, strings.NewReader(v))
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, info.Digest)
		}
		all, err := s.List(ctx, "")
		if err != nil || len(all) != 5 {
			t.Fatalf("list all: %d %v", len(all), err)
		}
		for i := 1; i < len(all); i++ {
			if all[i-1].Digest >= all[i].Digest {
				t.Fatal("list not in digest order")
			}
		}
		one, err := s.List(ctx, string(ds[0][:3]))
		if err != nil || len(one) != 1 || one[0].Digest != ds[0] {
			t.Fatalf("list by prefix %s: %+v %v", ds[0][:3], one, err)
		}
		if err := s.Delete(ctx, ds[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, ds[0]); forge.KindOf(err) != forge.NotFound {
			t.Fatalf("stat after delete: %v", err)
		}
		if all, _ := s.List(ctx, ""); len(all) != 4 {
			t.Fatalf("list after delete: %d", len(all))
		}
	})
}

// RunConcurrency checks that many concurrent Puts of the same and of
// different content all succeed, agree on digests, and read back intact.
func RunConcurrency(t *testing.T, s forge.BlobStore) {
	ctx := context.Background()
	const n = 16
	type res struct {
		want []byte
		info forge.BlobInfo
		err  error
	}
	out := make(chan res, 2*n)
	same := bytes.Repeat([]byte("same content "), 1000)
	for i := 0; i < n; i++ {
		go func() {
			info, err := s.Put(ctx, bytes.NewReader(same))
			out <- res{same, info, err}
		}()
		go func() {
			b := bytes.Repeat([]byte{byte(i)}, 1000+i)
			info, err := s.Put(ctx, bytes.NewReader(b))
			out <- res{b, info, err}
		}()
	}
	for i := 0; i < 2*n; i++ {
		r := <-out
		if r.err != nil {
			t.Fatalf("concurrent put: %v", r.err)
		}
		h := sha256.Sum256(r.want)
		if r.info.Digest != forge.Digest(hex.EncodeToString(h[:])) || r.info.Size != int64(len(r.want)) {
			t.Fatalf("concurrent put: %+v", r.info)
		}
		rc, err := s.Open(ctx, r.info.Digest)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, r.want) {
			t.Fatalf("read back after concurrent puts: %d bytes, %v", len(got), err)
		}
	}
	all, err := s.List(ctx, "")
	if err != nil || len(all) != n+1 {
		t.Fatalf("list after concurrent puts: %d blobs (want %d), %v", len(all), n+1, err)
	}
}

// RunCorruption checks that a blob whose stored bytes were changed by
// corrupt reads as an error wrapping wantErr, never as data.
func RunCorruption(t *testing.T, s forge.BlobStore, corrupt func(d forge.Digest), wantErr error) {
	ctx := context.Background()
	info, err := s.Put(ctx, strings.NewReader("the model weights"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt(info.Digest)
	rc, err := s.Open(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, wantErr) || !strings.Contains(err.Error(), "corrupted") || forge.KindOf(err) != forge.Internal {
		t.Fatalf("read of a corrupted blob: %v", err)
	}
}

package blob_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/blob/s3test"
)

// BenchmarkBlob puts and gets blobs through the local store, the S3 store
// and the bare S3 client (the same bytes to the same server), so the S3
// store's overhead over its client shows as the ratio of their MB/s:
//
//	go test -run - -bench Blob ./internal/blob/
func BenchmarkBlob(b *testing.B) {
	ctx := context.Background()
	srv := s3test.Start(b, "forge")
	local, err := blob.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s3, err := blob.NewS3(ctx, blob.S3Options{Bucket: "forge", Endpoint: srv.Endpoint, Region: "us-east-1", PathStyle: true,
		AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey, CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	stores := map[string]forge.BlobStore{"local": local, "s3": s3}
	for _, size := range []int{1 << 20, 64 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*31 + i>>9)
		}
		name := fmt.Sprintf("%dMB", size>>20)
		for _, kind := range []string{"local", "s3"} {
			s := stores[kind]
			var d forge.Digest
			b.Run("put/"+kind+"/"+name, func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					// Unknown length, as an HTTP upload's body.
					info, err := s.Put(ctx, io.MultiReader(bytes.NewReader(data)))
					if err != nil {
						b.Fatal(err)
					}
					d = info.Digest
				}
			})
			b.Run("get/"+kind+"/"+name, func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					rc, err := s.Open(ctx, d)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, rc); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		}
		c := s3.Client()
		b.Run("put/client/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := c.PutObject(ctx, "forge", "bare/"+name, io.MultiReader(bytes.NewReader(data)), -1, minio.PutObjectOptions{PartSize: 16 << 20}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("get/client/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				o, err := c.GetObject(ctx, "forge", "bare/"+name, minio.GetObjectOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, o); err != nil {
					b.Fatal(err)
				}
				o.Close()
			}
		})
	}
}

// Command blob benchmarks Forge's blob stores: put and get of blobs of
// each size through the local store, the S3 store and the bare minio-go
// client (the same bytes to the same versitygw, in the same run), printing
// MB/s, the S3 store's ratio to the bare client, and this process's peak
// RSS during each operation.
//
// Each size is measured -rounds times, the sides alternating (the first
// side of each round changes), and the median of the rounds is printed:
// on a shared machine one measurement can be off by half.
//
//	go run ./bench/blob [-sizes 1MB,100MB,2GB] [-rounds 3] [-dir /tmp]
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/bench/forgeproc"
	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/blob/s3test"
)

func main() {
	sizes := flag.String("sizes", "1MB,100MB,2GB", "blob sizes, comma-separated (KB, MB, GB)")
	dir := flag.String("dir", os.TempDir(), "folder for the local store, the S3 server's files and the cache")
	bin := flag.String("versitygw", s3test.Binary(), "versitygw binary (make versitygw)")
	rounds := flag.Int("rounds", 3, "rounds of each operation on each side")
	flag.Parse()
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench/blob: -rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(*sizes, *dir, *bin, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/blob:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for suf, m := range map[string]int64{"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("-sizes: %q is not a size like 100MB", s)
	}
	return n * mult, nil
}

func run(sizeList, dir, bin string, rounds int) error {
	ctx := context.Background()
	root, err := os.MkdirTemp(dir, "forge-bench-blob-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	endpoint, gw, err := forgeproc.StartGateway(ctx, bin, filepath.Join(root, "s3"))
	if err != nil {
		return err
	}
	defer func() { gw.Process.Kill(); gw.Wait() }()

	local, err := blob.NewLocal(filepath.Join(root, "local"))
	if err != nil {
		return err
	}
	s3, err := blob.NewS3(ctx, blob.S3Options{Bucket: "forge", Prefix: "store", Endpoint: endpoint, Region: "us-east-1",
		PathStyle: true, AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey, CacheDir: filepath.Join(root, "cache")})
	if err != nil {
		return err
	}
	c := s3.Client()
	fmt.Printf("%d rounds, sides alternating (the first side of each round changes); MB/s is the median of the rounds\n", rounds)
	fmt.Printf("%-6s %-6s %-7s %10s %9s %12s   %s\n", "op", "size", "side", "MB/s", "peak RSS", "s3/bare", "s3/bare by round")
	for _, s := range strings.Split(sizeList, ",") {
		size, err := parseSize(s)
		if err != nil {
			return err
		}
		// Repeat small blobs so that a run is long enough to time.
		reps := int(max(1, min(20, (256<<20)/size)))
		name := strings.TrimSpace(s)
		var localD, s3D forge.Digest
		key := "bare/" + name
		type side struct {
			name     string
			put, get func() error
			drop     func()
		}
		sides := []side{
			{"local", func() error { i, err := local.Put(ctx, newData(size)); localD = i.Digest; return err },
				func() error { return drain(local.Open(ctx, localD)) },
				func() { local.Delete(ctx, localD) }},
			{"s3", func() error { i, err := s3.Put(ctx, newData(size)); s3D = i.Digest; return err },
				func() error { return drain(s3.Open(ctx, s3D)) },
				func() { s3.Delete(ctx, s3D) }},
			// The client given the length it knows (the store does not:
			// an upload's body is a stream), the store's part size and
			// parallel parts, and its defaults otherwise.
			{"bare", func() error {
				_, err := c.PutObject(ctx, "forge", key, newData(size), size, minio.PutObjectOptions{PartSize: 16 << 20,
					ConcurrentStreamParts: true, NumThreads: 4, ContentType: "application/octet-stream"})
				return err
			}, func() error {
				o, err := c.GetObject(ctx, "forge", key, minio.GetObjectOptions{})
				return drain(io.ReadCloser(o), err)
			}, func() { c.RemoveObject(ctx, "forge", key, minio.RemoveObjectOptions{}) }},
		}
		rate := map[string][]float64{}
		peak := map[string]int64{}
		for r := range rounds {
			order := slices.Clone(sides)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, op := range []string{"put", "get"} {
				for _, sd := range order {
					f := sd.put
					if op == "get" {
						f = sd.get
					}
					mbs, rss, err := measure(size, reps, f)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", op, name, sd.name, err)
					}
					rate[op+sd.name] = append(rate[op+sd.name], mbs)
					peak[op+sd.name] = max(peak[op+sd.name], rss)
				}
			}
			// Make room for the next round.
			for _, sd := range sides {
				sd.drop()
			}
		}
		for _, op := range []string{"put", "get"} {
			for _, sd := range sides {
				ratio, byRound := "", ""
				if sd.name == "bare" {
					ratio = fmt.Sprintf("%.0f%%", 100*median(rate[op+"s3"])/median(rate[op+"bare"]))
					for i := range rate[op+"bare"] {
						byRound += fmt.Sprintf(" %.0f%%", 100*rate[op+"s3"][i]/rate[op+"bare"][i])
					}
				}
				fmt.Printf("%-6s %-6s %-7s %10.1f %6d MB %12s  %s\n", op, name, sd.name, median(rate[op+sd.name]), peak[op+sd.name]>>20, ratio, byRound)
			}
		}
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// measure runs f reps times and returns MB/s and the peak RSS while it ran.
func measure(size int64, reps int, f func() error) (float64, int64, error) {
	debug.FreeOSMemory()
	resetPeak()
	start := time.Now()
	for range reps {
		if err := f(); err != nil {
			return 0, 0, err
		}
	}
	el := time.Since(start)
	return float64(size) * float64(reps) / (1 << 20) / el.Seconds(), peakRSS(), nil
}

// resetPeak resets this process's high-water mark of resident memory
// (Linux: 5 to clear_refs), so each operation's peak is its own.
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func drain(rc io.ReadCloser, err error) error {
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// data is size bytes made on the fly (never held whole): a random 1 MiB
// block with each copy's index written into it, so no two blocks match.
// Each reader is fresh content: a new random block per blob.
type data struct {
	block  []byte
	n, off int64
}

func newData(size int64) io.Reader {
	b := make([]byte, 1<<20)
	rand.Read(b)
	// Only Read: a stream of unknown length, as an HTTP upload's body.
	return struct{ io.Reader }{&data{block: b, n: size}}
}

func (d *data) Read(p []byte) (int, error) {
	if d.off >= d.n {
		return 0, io.EOF
	}
	i := d.off % int64(len(d.block))
	if i == 0 {
		binary.LittleEndian.PutUint64(d.block, uint64(d.off))
	}
	n := copy(p, d.block[i:min(int64(len(d.block)), i+d.n-d.off)])
	d.off += int64(n)
	return n, nil
}

// Command queues benchmarks reading a Kafka topic into a dataset version
// against a bare consumer, side by side in one run on the same broker:
//
//   - ingest: datasets.Service.Ingest, what `forge data add NAME kafka://...`
//     runs on the server (franz-go consumer, messages parsed in Go and
//     written as Parquet while read, blob store, SQLite record);
//   - bare: a franz-go consumer with the same fetch settings that reads
//     every record and discards it.
//
// The broker (franz-go's kfake, holding -n messages of about 200 bytes) runs
// in a child process, and so does each measurement, so each peak RSS
// (getrusage's maxrss of the child) is that of the reader alone.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/forge-mlops/forge/internal/blob"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/sqlstore"
)

const topic = "events"

func main() {
	n := flag.Int("n", 1_000_000, "messages in the topic")
	parts := flag.Int("partitions", 4, "partitions of the topic")
	reps := flag.Int("reps", 2, "rounds, each one bare read and one ingest")
	memLimit := flag.String("gomemlimit", "100MiB", "GOMEMLIMIT of the two readers (not the broker); empty: none")
	role := flag.String("role", "", "internal: broker, bare or ingest")
	addr := flag.String("broker", "", "internal: the broker's address")
	flag.Parse()
	switch *role {
	case "broker":
		broker(*n, int32(*parts))
		return
	case "bare":
		report(bare(*addr))
		return
	case "ingest":
		report(ingest(*addr))
		return
	}

	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	b := exec.Command(self, "-role", "broker", "-n", fmt.Sprint(*n), "-partitions", fmt.Sprint(*parts))
	b.Stderr = os.Stderr
	out, err := b.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(); err != nil {
		log.Fatal(err)
	}
	defer b.Process.Kill()
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		log.Fatal("the broker did not start")
	}
	brokerAddr := strings.TrimSpace(sc.Text())
	fmt.Printf("kfake broker at %s: %d messages of ~200 bytes in %d partitions; readers run with GOMEMLIMIT=%s\n", brokerAddr, *n, *parts, *memLimit)

	var bareS, ingS []float64
	for r := 0; r < *reps; r++ {
		for _, which := range []string{"bare", "ingest"} {
			secs, cpu, rssMB, msgs := child(self, which, brokerAddr, *memLimit)
			fmt.Printf("round %d %-6s %d messages in %.2f s (%.0f msg/s, CPU %.2f s), peak RSS %.0f MB\n", r+1, which, msgs, secs, float64(msgs)/secs, cpu, rssMB)
			if msgs != int64(*n) {
				log.Fatalf("%s read %d messages, want %d", which, msgs, *n)
			}
			if which == "bare" {
				bareS = append(bareS, secs)
			} else {
				ingS = append(ingS, secs)
			}
		}
	}
	mb, mi := median(bareS), median(ingS)
	fmt.Printf("ingest throughput = %.0f%% of the bare consumer (medians %.2f s vs %.2f s; goal >= 70%%)\n", 100*mb/mi, mi, mb)
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// child runs one measurement in its own process and returns its time, the
// CPU time of the whole process, its peak RSS and the messages it read.
func child(self, role, addr, memLimit string) (float64, float64, float64, int64) {
	cmd := exec.Command(self, "-role", role, "-broker", addr)
	if memLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memLimit)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s: %v", role, err)
	}
	var secs float64
	var msgs int64
	if _, err := fmt.Sscanf(string(out), "%f %d", &secs, &msgs); err != nil {
		log.Fatalf("%s said %q", role, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return secs, cpu, float64(ru.Maxrss) / 1024, msgs
}

func report(secs float64, msgs int64) { fmt.Printf("%f %d\n", secs, msgs) }

// broker runs kfake with the topic filled, prints its address and waits.
func broker(n int, parts int32) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topic))
	if err != nil {
		log.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	errs := make(chan error, 1)
	pages := []string{"/", "/products", "/cart", "/checkout", "/search"}
	for i := 0; i < n; i++ {
		v := fmt.Sprintf(`{"user_id":%d,"event":"click","page":"%s/%d","price":%d.%02d,"session":"%016x","ua":"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0","ok":%t}`,
			i%100_000, pages[i%len(pages)], i%977, i%500, i%100, uint64(i)*2654435761, i%7 != 0)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i % 100_000)), Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	select {
	case err := <-errs:
		log.Fatal(err)
	default:
	}
	cl.Close()
	fmt.Println(addr)
	select {}
}

// bare reads every record of the topic and drops it, with the fetch
// settings queue/kafka uses.
func bare(addr string) (float64, int64) {
	ctx := context.Background()
	start := time.Now()
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		log.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		log.Fatal(err)
	}
	adm.Close()
	want := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = kgo.NewOffset().At(0)
			left[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.FetchMaxBytes(8<<20), kgo.FetchMaxPartitionBytes(2<<20), kgo.MaxConcurrentFetches(2),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	var n, bytes int64
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			log.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Value))
			if r.Offset >= left[r.Partition]-1 {
				delete(left, r.Partition)
			}
		})
	}
	return time.Since(start).Seconds(), n
}

// ingest makes one dataset version of the whole topic.
func ingest(addr string) (float64, int64) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "forge-bench-queues-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlstore.Open(ctx, sqlstore.Options{DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	blobs, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		log.Fatal(err)
	}
	// DuckDB with one thread (faster than two on the shared 2-core machine)
	// and a memory limit that keeps the whole process under the 300 MB goal.
	eng, err := duckq.NewEngine(duckq.EngineOptions{MemoryLimit: "160MB", Threads: 1, TempDir: filepath.Join(dir, "duckdb")})
	if err != nil {
		log.Fatal(err)
	}
	svc := datasets.New(db, blobs, eng, datasets.Options{TempDir: dir}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if p := os.Getenv("BENCH_QUEUES_PPROF"); p != "" {
		// CPU profile of the ingest to p, heap profile to p.heap.
		f, err := os.Create(p)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer func() {
			pprof.StopCPUProfile()
			if h, err := os.Create(p + ".heap"); err == nil {
				pprof.Lookup("allocs").WriteTo(h, 0)
				h.Close()
			}
		}()
	}
	start := time.Now()
	res, err := svc.Ingest(ctx, "events", datasets.IngestRequest{Source: "kafka://" + addr + "/" + topic})
	if err != nil {
		log.Fatal(err)
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "  version %s: %d rows, %d columns, %.1f MB Parquet, %d dead letters\n",
		res.Version.Ref(), res.Version.Rows, len(res.Version.Columns), float64(res.Version.Bytes)/1e6, res.Queue.DeadLetters)
	return secs, res.Messages
}

// Command monitoring measures a deployment's drift report at the scale of
// issue 20: 1,000,000 logged rows x 30 features (ten Parquet files, as
// ten flushes of the payload log write them) against a 100,000-row
// reference, through monitor.CompareParquet (what GET .../drift runs),
// then SciPy computing the same report on the same data in the same run
// (ks_2samp, wasserstein_distance normed by the reference's std, PSI over
// numpy.quantile deciles), and the largest differences between the two.
//
// Usage: go run ./bench/monitoring [-rows 1000000] [-rounds 3]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/forge-mlops/forge/internal/drift"
	"github.com/forge-mlops/forge/internal/duckq"
	"github.com/forge-mlops/forge/internal/monitor"
)

const features = 30

const scipyScript = `
import json, sys, time
import numpy as np
import pandas as pd
from scipy import stats
ref = pd.read_csv(sys.argv[1]).to_numpy(dtype=np.float64)
cur = pd.read_csv(sys.argv[2]).to_numpy(dtype=np.float64)
t = time.perf_counter()
out = []
for j in range(ref.shape[1]):
    a, b = ref[:, j], cur[:, j]
    ks = stats.ks_2samp(a, b).statistic
    w = stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)
    edges = np.quantile(a, np.linspace(0.1, 0.9, 9))
    fa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=10) / len(a)
    fb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=10) / len(b)
    fa = np.where(fa == 0, 0.0001, fa); fb = np.where(fb == 0, 0.0001, fb)
    out.append({"ks": ks, "wasserstein": w, "psi": float(np.sum((fa - fb) * np.log(fa / fb))), "drifted": bool(w > 0.1)})
json.dump({"seconds": time.perf_counter() - t, "features": out}, sys.stdout)
`

func cpu() time.Duration {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

func main() {
	rows := flag.Int("rows", 1_000_000, "logged rows (the reference has a tenth)")
	rounds := flag.Int("rounds", 3, "timed reports")
	py := flag.String("python", "/usr/bin/python3", "Python with scipy, numpy and pandas")
	withSciPy := flag.Bool("scipy", true, "compare with SciPy (off: Forge's timings only, to profile)")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "forge-bench-monitoring-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	eng, err := duckq.NewEngine(duckq.EngineOptions{TempDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	db, err := eng.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Standard normals; every third feature shifted by 0.5 in the log.
	var sel, names []string
	for j := range features {
		sel = append(sel, fmt.Sprintf("sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) + %%[1]g * %d AS f%02d", j%3/2, j))
		names = append(names, fmt.Sprintf("f%02d", j))
	}
	all := strings.Join(sel, ", ")
	refPath := filepath.Join(dir, "ref.parquet")
	exec1 := func(q string) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			log.Fatalf("%s: %v", q[:min(80, len(q))], err)
		}
	}
	fmt.Fprintf(os.Stderr, "writing %d logged rows and a %d-row reference...\n", *rows, *rows/10)
	exec1("SELECT setseed(0.42)")
	exec1(fmt.Sprintf("COPY (SELECT "+fmt.Sprintf(all, 0.0)+", (random() < 0.5)::INT AS label FROM range(%d)) TO '%s' (FORMAT parquet)", *rows/10, refPath))
	var files []string
	for i := range 10 {
		p := filepath.Join(dir, fmt.Sprintf("payloads-%d.parquet", i))
		exec1(fmt.Sprintf(`COPY (SELECT now()::TIMESTAMP - INTERVAL (r) MILLISECOND AS timestamp, 'cancer' AS model, '1' AS version,
			'req-' || r AS request_id, 'cancer-api' AS deployment, 0 AS row, %s, random() AS out_output__0
			FROM range(%d) t(r)) TO '%s' (FORMAT parquet)`, fmt.Sprintf(all, 0.5), *rows/10, p))
		files = append(files, p)
	}
	refCols, err := drift.Columns(ctx, db, drift.Parquet(refPath))
	if err != nil {
		log.Fatal(err)
	}
	filter := "model = 'cancer' AND version = '1' AND deployment = 'cancer-api' AND CAST(timestamp AS TIMESTAMP) >= now()::TIMESTAMP - INTERVAL 1 DAY"

	var walls, cpus []time.Duration
	var rep drift.Report
	for range *rounds {
		c0, t0 := cpu(), time.Now()
		rep, err = monitor.CompareParquet(ctx, db, refPath, refCols, files, filter, names)
		if err != nil {
			log.Fatal(err)
		}
		walls, cpus = append(walls, time.Since(t0)), append(cpus, cpu()-c0)
	}
	if rep.CurrentRows != int64(*rows) || rep.Drifted != 10 {
		log.Fatalf("report: %d rows, %d drifted; want %d, 10", rep.CurrentRows, rep.Drifted, *rows)
	}

	// The first report computes the reference's statistics and
	// histograms; later ones (the monitor's refreshes) find them cached.
	coldWall, coldCPU := walls[0], cpus[0]
	walls, cpus = walls[1:], cpus[1:]
	if len(walls) == 0 {
		walls, cpus = []time.Duration{coldWall}, []time.Duration{coldCPU}
	}
	slices.Sort(walls)
	slices.Sort(cpus)
	summary := func() {
		fmt.Printf("  forge, first report (reference scanned): %.2f s wall, %.2f s CPU\n", coldWall.Seconds(), coldCPU.Seconds())
		fmt.Printf("  forge, later reports (reference cached): median %.2f s wall, %.2f s CPU (min %.2f s wall, %d rounds)\n",
			walls[len(walls)/2].Seconds(), cpus[len(cpus)/2].Seconds(), walls[0].Seconds(), len(walls))
	}
	if !*withSciPy {
		summary()
		return
	}
	// SciPy on the same values (read from CSV before its clock starts).
	fmt.Fprintln(os.Stderr, "exporting CSV for SciPy...")
	refCSV, curCSV := filepath.Join(dir, "ref.csv"), filepath.Join(dir, "cur.csv")
	exec1(fmt.Sprintf("COPY (SELECT %s FROM '%s') TO '%s' (HEADER)", strings.Join(names, ", "), refPath, refCSV))
	exec1(fmt.Sprintf("COPY (SELECT %s FROM %s WHERE %s) TO '%s' (HEADER)", strings.Join(names, ", "), drift.Parquet(files...), filter, curCSV))
	out, err := exec.Command(*py, "-c", scipyScript, refCSV, curCSV).Output()
	if err != nil {
		log.Fatalf("scipy: %v", err)
	}
	var sp struct {
		Seconds  float64
		Features []struct {
			KS, Wasserstein, PSI float64
			Drifted              bool
		}
	}
	if err := json.Unmarshal(out, &sp); err != nil {
		log.Fatal(err)
	}
	var dks, dw, dpsi, maxPSI float64
	same := 0
	for j, f := range rep.Features {
		s := sp.Features[j]
		dks = math.Max(dks, math.Abs(*f.KS-s.KS))
		dw = math.Max(dw, math.Abs(*f.Wasserstein-s.Wasserstein))
		dpsi = math.Max(dpsi, math.Abs(*f.PSI-s.PSI))
		maxPSI = math.Max(maxPSI, s.PSI)
		if f.Drifted == s.Drifted {
			same++
		}
	}
	fmt.Printf("drift report, %d rows x %d features vs %d reference rows (%d rounds)\n", *rows, features, *rows/10, *rounds)
	summary()
	fmt.Printf("  scipy (arrays in memory):    %.2f s\n", sp.Seconds)
	fmt.Printf("  largest differences: KS %.2g, normed Wasserstein %.2g, PSI %.2g (PSIs up to %.3g); same verdict on %d of %d features\n",
		dks, dw, dpsi, maxPSI, same, features)
}

// Command loadgen sends one JSON body to a URL over keep-alive connections
// and prints requests/s and latency percentiles as one JSON line.
//
// With -rate it is open-loop, like wrk2: requests are due at fixed
// intervals and each latency counts from when its request was due, so a
// stall shows in the percentiles instead of slowing the sender down (what
// Debian's wrk 4.1, which has no -R, cannot do). Without -rate it is
// closed-loop, each connection sending its next request when the last one
// is answered: the fallback when wrk is missing.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "target URL")
	bodyFile := flag.String("body", "", "file holding the request body")
	conns := flag.Int("c", 16, "connections")
	rate := flag.Float64("rate", 0, "requests per second (0: as fast as the connections go)")
	dur := flag.Duration("d", 5*time.Second, "duration")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, Proxy: nil}}
	var errors atomic.Int64
	send := func() bool {
		resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
		if err != nil {
			errors.Add(1)
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			errors.Add(1)
		}
		return true
	}
	// Warm the connections.
	for range *conns {
		send()
	}

	lat := make([][]time.Duration, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(*dur)
	if *rate > 0 {
		due := make(chan time.Time, 1<<16)
		go func() {
			defer close(due)
			interval := time.Duration(float64(time.Second) / *rate)
			for t := start; t.Before(end); t = t.Add(interval) {
				if d := time.Until(t); d > 0 {
					time.Sleep(d)
				}
				due <- t
			}
		}()
		for c := range *conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for t := range due {
					send()
					lat[c] = append(lat[c], time.Since(t))
				}
			}()
		}
	} else {
		for c := range *conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					t := time.Now()
					if !send() {
						return
					}
					lat[c] = append(lat[c], time.Since(t))
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		fmt.Fprintln(os.Stderr, "no request answered")
		os.Exit(1)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"rps": float64(len(all)) / elapsed.Seconds(), "p50_ms": ms(all[len(all)/2]),
		"p99_ms": ms(all[len(all)*99/100]), "errors": errors.Load(), "requests": len(all),
	})
}

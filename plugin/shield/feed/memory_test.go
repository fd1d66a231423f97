package feed

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// memFigures is what TestRefreshMemoryFlat samples after a collection.
type memFigures struct {
	heap, rss  uint64
	goroutines int
}

func sampleMemory() memFigures {
	runtime.GC()
	runtime.GC() // the second cycle runs the cleanups that unmap old sets
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{heap: ms.HeapAlloc, rss: rssBytes(), goroutines: runtime.NumGoroutine()}
}

// rssBytes returns the resident set size from /proc (0 where there is
// none): the big sets live outside the Go heap, so the heap alone would
// not show them leak.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// 100 refreshes of a feed of a million names, each a new version (a full
// parse and build), leave the heap, the resident memory and the number of
// goroutines where they were after the first ten. Under the race detector
// the builds take minutes, so the test runs only without it.
func TestRefreshMemoryFlat(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("100 builds of a 1M-name list: run without -race and -short")
	}
	const names, refreshes, warmup = 1_000_000, 100, 10
	var versions [2][]byte
	for v := range versions {
		var b bytes.Buffer
		b.Grow(names * 24)
		for i := range names {
			fmt.Fprintf(&b, "n%d-v%d.feed.example\n", i, v)
		}
		versions[v] = b.Bytes()
	}
	srv := newFeedServer(t)
	n := 0
	srv.serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, n))
		w.Write(versions[n%2])
	})
	list := blocklist.NewList(blocklist.Config{Name: "big", Format: blocklist.FormatDomains, MaxInvalid: 0.1, MaxShrink: 0.5})
	// No cache directory: its fsync of 22 MiB per refresh measures the
	// disk, not the fetcher (TestFetchFaults covers the cache).
	f, err := New(list, Options{URL: srv.URL + "/big.txt", Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var at [2]memFigures
	var elapsed []time.Duration
	start := time.Now()
	for n = 0; n < refreshes; n++ {
		r := f.Fetch(context.Background())
		if r.Outcome != Updated || list.Snapshot().Set.Len() != names {
			t.Fatalf("refresh %d: %+v", n, r)
		}
		elapsed = append(elapsed, r.Elapsed)
		if list.Lookup(fmt.Sprintf("n123-v%d.feed.example.", n%2)).Action != blocklist.ActBlock {
			t.Fatalf("refresh %d: the new version is not in force", n)
		}
		switch n + 1 {
		case warmup:
			at[0] = sampleMemory()
		case refreshes:
			at[1] = sampleMemory()
		}
	}
	slices.Sort(elapsed)
	t.Logf("%d refreshes of %d names (%d MiB each) in %s; fetch+check+load median %s, max %s",
		refreshes, names, len(versions[0])>>20, time.Since(start).Round(time.Millisecond), elapsed[len(elapsed)/2].Round(time.Millisecond), elapsed[len(elapsed)-1].Round(time.Millisecond))
	t.Logf("after refresh %d: heap %.1f MiB, RSS %.1f MiB, %d goroutines", warmup, mib(at[0].heap), mib(at[0].rss), at[0].goroutines)
	t.Logf("after refresh %d: heap %.1f MiB, RSS %.1f MiB, %d goroutines", refreshes, mib(at[1].heap), mib(at[1].rss), at[1].goroutines)
	if at[1].heap > at[0].heap+8<<20 {
		t.Errorf("heap grew from %.1f to %.1f MiB over %d refreshes", mib(at[0].heap), mib(at[1].heap), refreshes-warmup)
	}
	if at[0].rss != 0 && at[1].rss > at[0].rss+64<<20 {
		t.Errorf("RSS grew from %.1f to %.1f MiB over %d refreshes", mib(at[0].rss), mib(at[1].rss), refreshes-warmup)
	}
	if at[1].goroutines > at[0].goroutines {
		t.Errorf("goroutines grew from %d to %d", at[0].goroutines, at[1].goroutines)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

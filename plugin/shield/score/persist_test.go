package score

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var fuzzSeeds = flag.Bool("fuzzseeds", false, "rewrite the seed corpus of FuzzLoadState in testdata/fuzz/FuzzLoadState")

// saved returns e's state file.
func saved(t testing.TB, e *Engine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := e.SaveState(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestStateRoundTrip: verdicts and the first-seen history survive a
// restart through the state file, with their wall-clock expiry and the
// history's start.
func TestStateRoundTrip(t *testing.T) {
	clk := newTestClock()
	a := mustEngine(t, Config{Clock: clk.Now})
	a.Score(Query{Name: "www.seen-before.example.", Type: 1, Client: otherClient})
	clk.Add(DefaultLongWindow + time.Minute)
	if tunnelQueries(a, "tun.example.net", tunnelClient, 50) == 0 {
		t.Fatal("tunnel not blocked")
	}
	for i := 0; i < 3; i++ {
		a.Score(Query{Name: fmt.Sprintf("more%d.tun.example.net.", i), Type: 1, Client: tunnelClient})
	}
	va, _ := a.verdicts.lookup(keyHashString(a.keySeed, "example.net"), a.now(), false)
	file := saved(t, a)
	clk.Add(time.Hour) // the downtime

	b := mustEngine(t, Config{Clock: clk.Now})
	c, err := b.LoadState(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if c.Verdicts != 1 || c.VerdictsDropped != 0 || !c.History {
		t.Fatalf("loaded %+v", c)
	}
	if !sticky(b, "example.net") {
		t.Fatal("verdict lost over the restart")
	}
	vb, _ := b.verdicts.lookup(keyHashString(b.keySeed, "example.net"), b.now(), false)
	if vb.hits != va.hits || vb.score != va.score || vb.reason != va.reason || vb.detector != va.detector {
		t.Errorf("verdict %+v after the restart, was %+v", vb, va)
	}
	if got, want := b.wallTime(vb.until), a.wallTime(va.until); !got.Equal(want) {
		t.Errorf("verdict expires at %v, was %v", got, want)
	}
	r := b.Explain(Query{Name: "x.example.net.", Type: 1, Client: otherClient})
	if r.TopReason() == "" || r.Detector() != DetTunnel || r.Domain() != "example.net" {
		t.Errorf("restored verdict: %q %q %q", r.TopReason(), r.Detector(), r.Domain())
	}
	if !b.HistoryFrom().Equal(a.HistoryFrom()) || !b.NewlySeenFrom().Equal(a.NewlySeenFrom()) {
		t.Errorf("history from %v (newly seen from %v), want %v (%v)", b.HistoryFrom(), b.NewlySeenFrom(), a.HistoryFrom(), a.NewlySeenFrom())
	}
	if newlySeen(b, "seen-before.example") || !newlySeen(b, "never-seen.example") {
		t.Error("first-seen history not restored")
	}
	// The verdict expires when it would have without the restart.
	clk.Add(DefaultSticky - time.Hour - time.Minute)
	if !sticky(b, "example.net") {
		t.Error("verdict expired early")
	}
	clk.Add(2 * time.Minute)
	if sticky(b, "example.net") {
		t.Error("verdict outlived its expiry")
	}
	// A second save and load gives the same.
	again := mustEngine(t, Config{Clock: clk.Now})
	if _, err := again.LoadState(bytes.NewReader(saved(t, b))); err != nil {
		t.Fatal(err)
	}
	// seen-before.example was seen two days ago: forgotten by now, as
	// without a restart; the tunnel's domain a day ago: remembered.
	if newlySeen(again, "example.net") || !newlySeen(again, "seen-before.example") || !again.NewlySeenFrom().Equal(a.NewlySeenFrom()) {
		t.Error("second round trip: the history is not what it would be without restarts")
	}
}

// TestStateHistoryAge: a state file saved an hour after a first start
// carries an hour of history, so newly_seen still waits the other 23;
// after a downtime of two long windows the history is gone and starts
// again, and the expired verdicts are dropped.
func TestStateHistoryAge(t *testing.T) {
	clk := newTestClock()
	a := mustEngine(t, Config{Clock: clk.Now})
	begin := clk.Now()
	if tunnelQueries(a, "tun.example.net", tunnelClient, 50) == 0 {
		t.Fatal("tunnel not blocked")
	}
	clk.Add(time.Hour)
	file := saved(t, a)
	clk.Add(time.Minute)
	b := mustEngine(t, Config{Clock: clk.Now})
	if _, err := b.LoadState(bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	if !b.NewlySeenFrom().Equal(begin.Add(DefaultLongWindow)) || newlySeen(b, "never-seen.example") {
		t.Errorf("newly seen from %v, want a day after the first start %v", b.NewlySeenFrom(), begin)
	}

	clk.Add(2 * DefaultLongWindow)
	d := mustEngine(t, Config{Clock: clk.Now})
	c, err := d.LoadState(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if c.History || c.Verdicts != 0 || c.VerdictsDropped != 1 {
		t.Errorf("two days later: loaded %+v, want no history and the verdict dropped", c)
	}
	if !d.NewlySeenFrom().Equal(clk.Now().Add(DefaultLongWindow)) {
		t.Errorf("stale history: newly seen from %v, want a day from now", d.NewlySeenFrom())
	}
}

// TestStateOtherConfig: a file from an engine with other table sizes and
// another long window loads: the verdicts fit in, the history merges, and
// a verdict longer than the sticky time now configured is cut to it.
func TestStateOtherConfig(t *testing.T) {
	clk := newTestClock()
	a := withHistory(mustEngine(t, Config{Clock: clk.Now, Sticky: 72 * time.Hour}))
	a.Score(Query{Name: "www.seen-before.example.", Type: 1, Client: otherClient})
	if tunnelQueries(a, "tun.example.net", tunnelClient, 50) == 0 {
		t.Fatal("tunnel not blocked")
	}
	file := saved(t, a)
	b := mustEngine(t, Config{Clock: clk.Now, LongWindow: 12 * time.Hour, Verdicts: 512, Domains: 4096})
	c, err := b.LoadState(bytes.NewReader(file))
	if err != nil || c.Verdicts != 1 || !c.History {
		t.Fatalf("loaded %+v, %v", c, err)
	}
	if newlySeen(b, "seen-before.example") {
		t.Error("history not merged")
	}
	clk.Add(DefaultSticky + time.Second)
	if sticky(b, "example.net") {
		t.Error("verdict not cut to the configured sticky time")
	}
}

// buildState assembles a state file from sections, with its checksum.
func buildState(version uint16, sections ...[]byte) []byte {
	var b []byte
	b = append(b, stateMagic[:]...)
	b = binary.LittleEndian.AppendUint16(b, version)
	for _, s := range sections {
		b = append(b, s...)
	}
	b = append(b, secEnd)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func metaSection(saved time.Time, seed uint64, extra ...byte) []byte {
	var m []byte
	for _, v := range []uint64{uint64(saved.UnixNano()), uint64(saved.Add(-DefaultLongWindow).UnixNano()),
		uint64(saved.UnixNano()), uint64(DefaultLongWindow), seed} {
		m = binary.LittleEndian.AppendUint64(m, v)
	}
	return appendSection(nil, secMeta, append(m, extra...))
}

func verdictsSection(recs ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(recs)))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	return appendSection(nil, secVerdicts, b)
}

// TestStateRecordsExtend: verdict records carry their length, so a
// record from an older writer (fewer fields) and one from a newer writer
// (more fields, and a section this reader does not know) both load.
func TestStateRecordsExtend(t *testing.T) {
	clk := newTestClock()
	now := clk.Now()
	const seed = 0x1234567
	until := uint64(now.Add(time.Hour).Unix())
	short := binary.LittleEndian.AppendUint64(nil, keyHashString(uint64(seed), "short.example"))
	short = binary.LittleEndian.AppendUint64(short, until)
	long := binary.LittleEndian.AppendUint64(nil, keyHashString(uint64(seed), "long.example"))
	long = binary.LittleEndian.AppendUint64(long, until)
	long = binary.LittleEndian.AppendUint16(long, 7)
	long = append(long, 88)
	long = appendName(long, DetDGA)
	long = appendName(long, "dga_label")
	long = append(long, "scope and earners, one day"...)
	file := buildState(stateVersion, metaSection(now, seed, 1, 2, 3), appendSection(nil, 99, []byte("later")),
		verdictsSection(short, long))
	e := mustEngine(t, Config{Clock: clk.Now})
	c, err := e.LoadState(bytes.NewReader(file))
	if err != nil || c.Verdicts != 2 || c.History {
		t.Fatalf("loaded %+v, %v", c, err)
	}
	if !sticky(e, "short.example") || !sticky(e, "long.example") {
		t.Fatal("verdicts not loaded")
	}
	r := e.Explain(Query{Name: "a.long.example.", Type: 1})
	if r.Score != 88 || r.Detector() != DetDGA || r.TopReason() != "dga_label" {
		t.Errorf("long record: %d %q %q", r.Score, r.Detector(), r.TopReason())
	}
}

// corruptions returns damaged versions of a good state file, by name.
func corruptions(good []byte) map[string][]byte {
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	out := map[string][]byte{
		"empty":            {},
		"magic only":       good[:8],
		"bad magic":        flip(0),
		"version":          flip(8),
		"meta length":      flip(11),
		"a history bit":    flip(len(good) / 2),
		"checksum":         flip(len(good) - 1),
		"end tag":          flip(len(good) - 5),
		"trailing garbage": append(bytes.Clone(good), 0),
		"json":             []byte(`{"version":1,"quarantines":[]}`),
	}
	for _, n := range []int{9, 10, 15, 60, 70, len(good) / 3, len(good) - 30, len(good) - 4, len(good) - 1} {
		out[fmt.Sprintf("truncated at %d", n)] = good[:n]
	}
	return out
}

// TestStateCorrupt: a damaged file is refused with ErrCorruptState and
// leaves the engine as it was.
func TestStateCorrupt(t *testing.T) {
	clk := newTestClock()
	a := mustEngine(t, Config{Clock: clk.Now})
	if tunnelQueries(a, "tun.example.net", tunnelClient, 50) == 0 {
		t.Fatal("tunnel not blocked")
	}
	good := saved(t, a)
	for name, data := range corruptions(good) {
		e := mustEngine(t, Config{Clock: clk.Now})
		seed, from := e.keySeed, e.NewlySeenFrom()
		_, err := e.LoadState(bytes.NewReader(data))
		if !errors.Is(err, ErrCorruptState) {
			t.Errorf("%s: error %v, want ErrCorruptState", name, err)
			continue
		}
		if e.keySeed != seed || !e.NewlySeenFrom().Equal(from) || e.Stats().Verdicts != 0 {
			t.Errorf("%s: a refused file changed the engine", name)
		}
	}
	// A read error is not corruption: the file may be fine.
	e := mustEngine(t, Config{Clock: clk.Now})
	if _, err := e.LoadState(&failingReader{data: good[:100]}); err == nil || errors.Is(err, ErrCorruptState) {
		t.Errorf("read error: %v", err)
	}
	// Only a fresh engine loads.
	if _, err := a.LoadState(bytes.NewReader(good)); err == nil || errors.Is(err, ErrCorruptState) {
		t.Errorf("load into a used engine: %v", err)
	}
}

type failingReader struct{ data []byte }

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// fuzzConfig is the configuration of the engines of FuzzLoadState: small
// tables and 256-bit history filters, so that seeds stay small.
const fuzzBloomBits = 256

func fuzzEngine(t testing.TB, clk *testClock) *Engine {
	e, err := newEngine(Config{Clock: clk.Now, Verdicts: 256, Domains: 512, Clients: 512, Names: 1024}, fuzzBloomBits)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fuzzSeedFiles returns the seed corpus: state files of small engines,
// and damaged ones.
func fuzzSeedFiles(t testing.TB) map[string][]byte {
	clk := newTestClock()
	e := fuzzEngine(t, clk)
	empty := saved(t, e)
	for _, zone := range []string{"tun.example.net", "other.example.org"} {
		if tunnelQueries(e, zone, tunnelClient, 50) == 0 {
			t.Fatal("tunnel not blocked")
		}
	}
	e.Score(Query{Name: "www.seen.example.", Type: 1, Client: otherClient})
	good := saved(t, e)
	// A key twice (the fuzzer found that it was counted twice).
	rec := binary.LittleEndian.AppendUint64(nil, 42)
	rec = binary.LittleEndian.AppendUint64(rec, uint64(clk.Now().Add(time.Hour).Unix()))
	twice := buildState(stateVersion, metaSection(clk.Now(), 7), verdictsSection(rec, rec))
	out := map[string][]byte{"valid_empty": empty, "valid_verdicts": good, "valid_duplicate_keys": twice}
	for name, data := range corruptions(good) {
		out["corrupt_"+strings.ReplaceAll(name, " ", "_")] = data
	}
	return out
}

// TestFuzzSeeds checks the committed seed corpus: the valid seeds load,
// the corrupt ones are refused. With -fuzzseeds it rewrites the corpus.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLoadState")
	if *fuzzSeeds {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range fuzzSeedFiles(t) {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := os.ReadDir(dir)
	if err != nil || len(files) < 10 {
		t.Fatalf("seed corpus: %d files, %v", len(files), err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		data, err := parseFuzzFile(raw)
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		clk := newTestClock()
		_, err = fuzzEngine(t, clk).LoadState(bytes.NewReader(data))
		switch valid := strings.HasPrefix(f.Name(), "valid_"); {
		case valid && err != nil:
			t.Errorf("%s: %v", f.Name(), err)
		case !valid && !errors.Is(err, ErrCorruptState):
			t.Errorf("%s: error %v, want ErrCorruptState", f.Name(), err)
		}
	}
}

// parseFuzzFile reads the []byte of a corpus file in the "go test fuzz
// v1" format.
func parseFuzzFile(raw []byte) ([]byte, error) {
	s := strings.TrimSpace(string(raw))
	s, ok := strings.CutPrefix(s, "go test fuzz v1\n[]byte(")
	if !ok || !strings.HasSuffix(s, ")") {
		return nil, errors.New("not a fuzz corpus file of one []byte")
	}
	var out string
	if _, err := fmt.Sscanf(s[:len(s)-1], "%q", &out); err != nil {
		return nil, err
	}
	return []byte(out), nil
}

// FuzzLoadState feeds arbitrary bytes to the state file loader: it may
// refuse them, never panic. What it accepts must survive a save and a
// load unchanged in its verdict count. Each input is tried as it is and
// with its last four bytes replaced by the right checksum, so that the
// fuzzer reaches the sections behind the checksum.
func FuzzLoadState(f *testing.F) {
	for _, data := range fuzzSeedFiles(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		loadFuzzed(t, data)
		if n := len(data); n >= 4 {
			fixed := binary.LittleEndian.AppendUint32(bytes.Clone(data[:n-4]), crc32.Checksum(data[:n-4], castagnoli))
			loadFuzzed(t, fixed)
		}
	})
}

func loadFuzzed(t *testing.T, data []byte) {
	{
		clk := newTestClock()
		e := fuzzEngine(t, clk)
		c, err := e.LoadState(bytes.NewReader(data))
		if err != nil {
			return
		}
		if s := e.Stats(); s.Verdicts != c.Verdicts {
			t.Fatalf("loaded %d verdicts, holds %d", c.Verdicts, s.Verdicts)
		}
		e.Score(Query{Name: "www.example.com.", Type: 1, Client: otherClient})
		again := fuzzEngine(t, clk)
		c2, err := again.LoadState(bytes.NewReader(saved(t, e)))
		if err != nil {
			t.Fatalf("a saved state does not load: %v", err)
		}
		if c2.Verdicts != c.Verdicts {
			t.Fatalf("round trip loaded %d verdicts, want %d", c2.Verdicts, c.Verdicts)
		}
	}
}

// TestStateIdleEngine: an engine without queries for a while has not
// rotated its filters; its state file holds them as they would be now, so
// that its history still counts and what it forgot stays forgotten.
func TestStateIdleEngine(t *testing.T) {
	clk := newTestClock()
	a := mustEngine(t, Config{Clock: clk.Now})
	a.Score(Query{Name: "www.day-one.example.", Type: 1, Client: otherClient})
	clk.Add(DefaultLongWindow + time.Hour)
	a.Score(Query{Name: "www.day-two.example.", Type: 1, Client: otherClient})
	clk.Add(DefaultLongWindow) // idle: no rotation since day two
	file := saved(t, a)
	b := mustEngine(t, Config{Clock: clk.Now})
	c, err := b.LoadState(bytes.NewReader(file))
	if err != nil || !c.History {
		t.Fatalf("loaded %+v, %v", c, err)
	}
	if !b.NewlySeenFrom().Equal(a.NewlySeenFrom()) {
		t.Errorf("history start not carried")
	}
	if newlySeen(b, "day-two.example") || !newlySeen(b, "day-one.example") {
		t.Error("the idle engine's filters were not saved as they are now")
	}
}

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// settleNames returns a domains list: the name "first" (if not empty),
// n generated names, then the name "last" (if not empty).
func settleNames(first string, n int, last string) []byte {
	var b strings.Builder
	if first != "" {
		b.WriteString(first + "\n")
	}
	for i := range n {
		fmt.Fprintf(&b, "name-%06d.example.test\n", i)
	}
	if last != "" {
		b.WriteString(last + "\n")
	}
	return []byte(b.String())
}

// TestSlowWriteNeverServedPartially writes a new version of a list in
// place, slowly, while a client queries two names: removed.test, which
// only the old version blocks, and tail.test, the last line of the new
// version. Every part of the new file lacks both, so a partial version in
// force answers both "allowed" in one round; the old version and the new
// one never do (removed.test is asked first, so a swap between the two
// questions gives "blocked, blocked"). The default settle window (2s)
// applies: the writes pause for longer than the debounce, never for
// longer than settle.
func TestSlowWriteNeverServedPartially(t *testing.T) {
	up := startUpstream(t)
	const chunk = 64 << 10
	for _, tc := range []struct {
		name    string
		pauseAt float64       // share of the file after which the writer pauses longer
		pause   time.Duration // that longer pause
	}{
		{"64KiB every 200ms", 0, 0},
		{"pause at 60%", 0.6, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			oldList := settleNames("removed.test", 27000, "")
			newList := settleNames("", 27000, "tail.test")
			p := writeFile(t, dir, "list.txt", string(oldList))
			r := startCoreDNS(t, shieldCorefile(up, "", "blocklist l "+p+" domains\nreload 500ms 300ms\naudit off"))
			if !blocked(t, r, "removed.test.") || blocked(t, r, "tail.test.") {
				t.Fatal("old list not in force")
			}

			done := make(chan error, 1)
			go func() {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
				if err != nil {
					done <- err
					return
				}
				defer f.Close()
				paused := false
				for off := 0; off < len(newList); off += chunk {
					end := min(off+chunk, len(newList))
					if _, err := f.Write(newList[off:end]); err != nil {
						done <- err
						return
					}
					if !paused && tc.pauseAt > 0 && float64(end) >= tc.pauseAt*float64(len(newList)) {
						paused = true
						time.Sleep(tc.pause)
					}
					time.Sleep(200 * time.Millisecond)
				}
				done <- nil
			}()

			// Query until the new version is in force, bounded in
			// count and in time.
			var writeEnd time.Time
			rounds, partial := 0, 0
			deadline := time.Now().Add(30 * time.Second)
			for ; rounds < 100000 && time.Now().Before(deadline); rounds++ {
				if writeEnd.IsZero() {
					select {
					case err := <-done:
						if err != nil {
							t.Fatal(err)
						}
						writeEnd = time.Now()
					default:
					}
				}
				removedBlocked := blocked(t, r, "removed.test.")
				tailBlocked := blocked(t, r, "tail.test.")
				if !removedBlocked && !tailBlocked {
					partial++
				}
				if !writeEnd.IsZero() && !removedBlocked && tailBlocked {
					break
				}
			}
			if partial != 0 {
				t.Errorf("%d of %d rounds were answered by a partial list", partial, rounds)
			}
			if writeEnd.IsZero() || blocked(t, r, "removed.test.") || !blocked(t, r, "tail.test.") {
				t.Fatalf("the new list is not in force after %d rounds", rounds)
			}
			// In force within settle (2s) plus a few seconds of the
			// write's end; a round takes well under a millisecond.
			if took := time.Since(writeEnd); took > 2*time.Second+reloadWithin {
				t.Errorf("the new list took %s after the write to come in force", took)
			}
			if !blocked(t, r, "name-013500.example.test.") {
				t.Error("a name in the middle of the new list is not blocked")
			}
		})
	}
}

// TestRenamePublishesAtOnce: a list written elsewhere and renamed into
// place is complete, so it is in force without waiting for the settle
// window (here a minute).
func TestRenamePublishesAtOnce(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "list.txt", "one.test\n")
	r := startCoreDNS(t, shieldCorefile(up, "", "blocklist l "+p+"\nsettle 1m\naudit off"))
	if !blocked(t, r, "one.test.") {
		t.Fatal("initial list not in force")
	}
	tmp := writeFile(t, dir, "list.txt.new", "one.test\ntwo.test\n")
	if err := os.Rename(tmp, filepath.Join(dir, "list.txt")); err != nil {
		t.Fatal(err)
	}
	eventually(t, reloadWithin, "renamed list in force before the settle window", func() bool { return blocked(t, r, "two.test.") })
}

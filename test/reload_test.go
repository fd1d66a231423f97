package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// blocked reports whether name is answered NXDOMAIN by shield.
func blocked(t testing.TB, r *resolver, name string) bool {
	t.Helper()
	return ask(t, "udp", r.udp, name, dns.TypeA).Rcode == dns.RcodeNameError
}

// The bound: an edited list is in force within 5 seconds.
const reloadWithin = 5 * time.Second

func TestHotReload(t *testing.T) {
	up := startUpstream(t)

	t.Run("in-place write", func(t *testing.T) {
		dir := t.TempDir()
		p := writeFile(t, dir, "list.txt", "one.test\n")
		r := startCoreDNS(t, shieldCorefile(up, "", "blocklist l "+p+"\naudit off"))
		if !blocked(t, r, "one.test.") || blocked(t, r, "two.test.") {
			t.Fatal("initial list not in force")
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(f, "one.test\ntwo.test\n")
		f.Close()
		eventually(t, reloadWithin, "in-place edit in force", func() bool { return blocked(t, r, "two.test.") })
	})

	t.Run("rename", func(t *testing.T) {
		dir := t.TempDir()
		p := writeFile(t, dir, "list.txt", "one.test\n")
		r := startCoreDNS(t, shieldCorefile(up, "", "blocklist l "+p+"\naudit off"))
		if !blocked(t, r, "one.test.") {
			t.Fatal("initial list not in force")
		}
		// What mv, vim and sed -i do: write a new file, rename it over.
		tmp := writeFile(t, dir, ".list.txt.swp", "one.test\nthree.test\n")
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, reloadWithin, "renamed file in force", func() bool { return blocked(t, r, "three.test.") })
		// A second rename is seen too: the watch is on the directory.
		tmp = writeFile(t, dir, "list.new", "four.test\nthree.test\n")
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, reloadWithin, "second rename in force", func() bool { return blocked(t, r, "four.test.") })
		if !blocked(t, r, "three.test.") || blocked(t, r, "one.test.") {
			t.Error("second version not exactly in force")
		}
	})

	t.Run("symlink swap", func(t *testing.T) {
		// The Kubernetes ConfigMap layout: list.txt -> ..data/list.txt,
		// ..data -> ..v1; an update makes ..v2 and renames a new ..data
		// symlink over the old one.
		dir := t.TempDir()
		mkVersion := func(v, content string) {
			if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, v), "list.txt", content)
		}
		mkVersion("..v1", "one.test\n")
		if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("..data/list.txt", filepath.Join(dir, "list.txt")); err != nil {
			t.Fatal(err)
		}
		r := startCoreDNS(t, shieldCorefile(up, "", "blocklist l "+filepath.Join(dir, "list.txt")+"\naudit off"))
		if !blocked(t, r, "one.test.") {
			t.Fatal("initial list not in force")
		}
		mkVersion("..v2", "one.test\nfive.test\n")
		if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(dir, "..v1"))
		eventually(t, reloadWithin, "symlink swap in force", func() bool { return blocked(t, r, "five.test.") })
	})
}

func TestBadUpdateKeepsLastGood(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	var good string
	for i := range 10 {
		good += fmt.Sprintf("bad%d.test\n", i)
	}
	p := writeFile(t, dir, "list.txt", good)
	metricsAddr := freePort(t)
	r := startCoreDNS(t, shieldCorefile(up, "prometheus "+metricsAddr, "blocklist l "+p+" domains\nreload 200ms 50ms\nsettle 100ms\naudit off"))
	if !blocked(t, r, "bad9.test.") {
		t.Fatal("initial list not in force")
	}
	failures := func(reason string) float64 {
		return metricValue(t, metricsAddr, "coredns_shield_list_reload_failures_total", map[string]string{"list": "l", "reason": reason})
	}
	updates := []struct{ reason, content string }{
		{"empty", "  \n\n"},
		{"garbage", "bad0.test\n" + "this is not / a domain\n" + "neither (is) this\n" + "nor {this}\n"},
		{"shrink", "bad0.test\nbad1.test\nbad2.test\n"},
	}
	for _, u := range updates {
		if err := os.WriteFile(p, []byte(u.content), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, reloadWithin, u.reason+" update counted as a failure", func() bool { return failures(u.reason) >= 1 })
		if !blocked(t, r, "bad9.test.") {
			t.Fatalf("after a %s update the last good list is no longer in force", u.reason)
		}
	}
	// An unreadable list (removed) keeps the last good version too.
	os.Remove(p)
	eventually(t, reloadWithin, "missing file counted", func() bool { return failures("read") >= 1 })
	if !blocked(t, r, "bad9.test.") {
		t.Fatal("after the file vanished the last good list is no longer in force")
	}
	// A good update after all that is taken.
	writeFile(t, dir, "list.txt", good+"bad10.test\n")
	eventually(t, reloadWithin, "good update in force", func() bool { return blocked(t, r, "bad10.test.") })
}

// TestFailedReloadStopsAbandonedShield: a Corefile reload that fails after
// the new configuration's plugins started (its second server block asks
// for a port that is taken) is dropped by CoreDNS without a shutdown. The
// shield it had started must stop anyway: its list watcher no longer
// reloads, and the configuration in force keeps working.
func TestFailedReloadStopsAbandonedShield(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	keep := writeFile(t, dir, "keep.txt", "kept.test\n")
	orphan := writeFile(t, dir, "orphan.txt", "orphan.test\n")
	metricsAddr := freePort(t)
	good := shieldCorefile(up, "prometheus "+metricsAddr, "blocklist keep "+keep+"\nreload 100ms 10ms\naudit off")
	r := startCoreDNS(t, good)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	bad := shieldCorefile(up, "prometheus "+metricsAddr, "blocklist orphan "+orphan+"\nreload 100ms 10ms\nsettle 100ms\naudit off") +
		".:" + port + " {\n bind 127.0.0.1\n whoami\n}\n"
	startMu.Lock()
	inst, err := r.inst.Restart(corefileInput(bad))
	startMu.Unlock()
	if err == nil {
		r.inst = inst
		t.Fatal("the reload onto a taken port succeeded")
	}
	reloads := func() float64 {
		return metricValue(t, metricsAddr, "coredns_shield_list_reloads_total", map[string]string{"list": "orphan"})
	}
	if reloads() != 1 {
		t.Fatalf("the abandoned shield did not start: orphan reloads %v", reloads())
	}
	// Its watcher would load this within a few 100 ms polls (the settle
	// window is 100 ms).
	os.WriteFile(orphan, []byte("orphan.test\nmore.test\n"), 0o644)
	time.Sleep(1500 * time.Millisecond)
	if n := reloads(); n != 1 {
		t.Errorf("the abandoned shield still watches its lists: orphan reloads %v", n)
	}
	if !blocked(t, r, "kept.test.") || blocked(t, r, "orphan.test.") {
		t.Error("the configuration in force is not the one serving")
	}
}

package test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadiness(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "late.txt") // does not exist yet
	readyAddr := freePort(t)
	startCoreDNS(t, shieldCorefile(up, "ready "+readyAddr, "blocklist late "+list+"\nreload 200ms\naudit off"))
	status := func() int {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + readyAddr + "/ready")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, 3*time.Second, "ready endpoint up", func() bool { return status() != 0 })
	time.Sleep(300 * time.Millisecond)
	if s := status(); s != http.StatusServiceUnavailable {
		t.Fatalf("ready before the list loaded: status %d", s)
	}
	if err := os.WriteFile(list, []byte("evil.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "ready after the list loaded", func() bool { return status() == http.StatusOK })
}

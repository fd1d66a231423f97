package feed

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// meta is what the cache keeps beside a feed's last good copy: what is
// needed to ask the feed whether that copy is still current, and to tell
// how old it is. It is stored as JSON in NAME.meta.
type meta struct {
	// URLHash is the SHA-256 of the feed URL: a copy fetched from
	// another URL (the Corefile changed) is not served for this one. The
	// URL itself may hold credentials and is not stored.
	URLHash      string    `json:"url_sha256"`
	URL          string    `json:"url"` // redacted, for people
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Fetched      time.Time `json:"fetched"`  // the last time the feed confirmed this copy
	Modified     time.Time `json:"modified"` // when this copy was first fetched
	SHA256       string    `json:"sha256"`   // of the list text (decompressed)
	Bytes        int64     `json:"bytes"`
	Serial       uint32    `json:"serial,omitempty"` // of a transferred zone
}

// version returns the blocklist version of the copy meta describes.
func (m *meta) version() string {
	if len(m.SHA256) < 16 {
		return ""
	}
	return m.SHA256[:16]
}

func urlHash(u string) string {
	h := sha256.Sum256([]byte(u))
	return hex.EncodeToString(h[:])
}

// cache is a feed's files in the cache directory: NAME.list holds the
// last good list text, NAME.meta its meta. Temporary files are named
// ".NAME~RANDOM.tmp"; '~' cannot occur in NAME, so one list's pattern never
// matches another's.
type cache struct {
	dir  string
	base string // the list name made safe for a file name
}

// fileBase returns name as a file name: letters, digits, '.', '_' and
// '-' are kept, anything else becomes '_', and a name that had to change
// gets its hash appended so that two lists cannot share files.
func fileBase(name string) string {
	var b strings.Builder
	changed := name == "" || name[0] == '.'
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	if changed {
		h := sha256.Sum256([]byte(name))
		b.WriteString("_" + hex.EncodeToString(h[:4]))
	}
	return b.String()
}

func (c *cache) listPath() string { return filepath.Join(c.dir, c.base+".list") }
func (c *cache) metaPath() string { return filepath.Join(c.dir, c.base+".meta") }

// staleTemp is the age from which a temporary file is taken for the
// leftover of an interrupted fetch. Younger ones may belong to the fetcher
// of the configuration a Corefile reload is replacing.
const staleTemp = time.Hour

// prepare creates the directory (mode 0700) and removes the temporary
// files an interrupted fetch left behind.
func (c *cache) prepare() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(c.dir, "."+c.base+"~*.tmp"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.Remove(p)
		}
	}
	return nil
}

// tempFile creates a temporary file (mode 0600) for a download, in the
// cache directory so that it can be renamed over the copy, or in the
// system's temporary directory when there is no cache.
func tempFile(c *cache) (*os.File, error) {
	if c == nil {
		return os.CreateTemp("", ".shieldfeed.*.tmp")
	}
	return os.CreateTemp(c.dir, "."+c.base+"~*.tmp")
}

// readMeta returns the stored meta, or an error when there is none or it
// cannot be read.
func (c *cache) readMeta() (*meta, error) {
	b, err := os.ReadFile(c.metaPath())
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("cache %s: %w", c.metaPath(), err)
	}
	return &m, nil
}

// commit makes the synced temporary file tmp the cached copy, then writes
// m. A crash between the two leaves a meta whose SHA-256 does not match
// the copy; the copy is then still served, but without validators.
func (c *cache) commit(tmp string, m *meta) error {
	if err := os.Rename(tmp, c.listPath()); err != nil {
		return err
	}
	if err := syncDir(c.dir); err != nil {
		return err
	}
	return c.writeMeta(m)
}

// writeMeta replaces the meta file atomically: a temporary file, fsync,
// rename, fsync of the directory.
func (c *cache) writeMeta(m *meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	f, err := tempFile(c)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), c.metaPath())
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(c.dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, fs.ErrInvalid) { // some filesystems cannot sync a directory
		err = nil
	}
	return err
}

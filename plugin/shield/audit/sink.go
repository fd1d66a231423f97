package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

const (
	// DefaultMaxBytes is the size at which OpenFile rotates when it is
	// given 0: 100 MiB.
	DefaultMaxBytes = 100 << 20
	// DefaultKeep is how many rotated files OpenFile keeps when it is
	// given 0.
	DefaultKeep = 5

	// fileMode is the mode of every audit file: the records name clients
	// and what they looked up, so only the owner may read them.
	fileMode fs.FileMode = 0o600
)

// Stdout returns a Sink that writes to the process's standard output.
// Its Close does nothing.
func Stdout() Sink { return stdoutSink{} }

type stdoutSink struct{}

func (stdoutSink) Write(p []byte) error {
	_, err := os.Stdout.Write(p)
	return err
}

func (stdoutSink) Close() error { return nil }

// fileSink is the Sink that OpenFile returns.
type fileSink struct {
	path     string
	maxBytes int64
	keep     int

	mu   sync.Mutex // guards f and size
	f    *os.File   // nil after Close
	size int64      // bytes in f
}

var _ Sink = (*fileSink)(nil)

// OpenFile returns a Sink that appends to the file at path, creating it
// with mode 0600 if needed. An existing file must be a regular file; if its
// mode allows more than the owner reading and writing, it is tightened. The
// directory must already exist.
//
// A symbolic link at path, or at one of the rotated names path.1 to
// path.keep, is refused with an error: following it would let whoever can
// write to the directory point the records (and the chmod) at another
// file. The file is opened with O_NOFOLLOW where the system has it, so a
// link put in place after the check is refused too.
//
// When a write would take the file past maxBytes (0 means DefaultMaxBytes),
// the file is rotated: path.keep is removed, path.N is renamed to path.N+1,
// path to path.1, and a new path is created with mode 0600. So at most keep
// rotated files (0 means DefaultKeep) are kept beside the current one.
// Writes are split only between lines, and a file grows past maxBytes only
// when a single line is longer than maxBytes. If rotating fails, Write
// returns the error and writes the data to the current file; the next
// Write tries again.
func OpenFile(path string, maxBytes int64, keep int) (Sink, error) {
	if path == "" {
		return nil, errors.New("audit: empty file path")
	}
	if maxBytes < 0 {
		return nil, fmt.Errorf("audit: negative maximum file size %d", maxBytes)
	}
	if keep < 0 {
		return nil, fmt.Errorf("audit: negative number of rotated files %d", keep)
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	if keep == 0 {
		keep = DefaultKeep
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("audit: directory %q for the audit file does not exist", dir)
	case err != nil:
		return nil, fmt.Errorf("audit: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("audit: %q is not a directory", dir)
	}
	s := &fileSink{path: path, maxBytes: maxBytes, keep: keep}
	if err := s.checkRotated(); err != nil {
		return nil, err
	}
	f, size, err := openLog(path)
	if err != nil {
		return nil, err
	}
	s.f, s.size = f, size
	return s, nil
}

// rotated returns the name of the i-th rotated file.
func (s *fileSink) rotated(i int) string { return s.path + "." + strconv.Itoa(i) }

// checkRotated returns an error if a rotated name is a symbolic link.
func (s *fileSink) checkRotated() error {
	for i := 1; i <= s.keep; i++ {
		if err := refuseSymlink(s.rotated(i)); err != nil {
			return err
		}
	}
	return nil
}

// refuseSymlink returns an error if path is a symbolic link. A path that
// does not exist is fine.
func refuseSymlink(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("audit: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("audit: %s is a symbolic link; refusing to follow it (give the real path)", path)
	}
	return nil
}

// openLog opens path for appending with mode 0600, checks that it is a
// regular file and not a symbolic link, tightens a wider mode, and returns
// the file and its size.
func openLog(path string) (*os.File, int64, error) {
	if err := refuseSymlink(path); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|oNoFollow, fileMode)
	if err != nil {
		if isSymlinkErr(err) {
			return nil, 0, fmt.Errorf("audit: %s is a symbolic link; refusing to follow it (give the real path)", path)
		}
		return nil, 0, fmt.Errorf("audit: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil && fi.Mode().Perm()&^fileMode != 0 {
		err = f.Chmod(fi.Mode().Perm() & fileMode)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("audit: %w", err)
	}
	return f, fi.Size(), nil
}

// Write appends p, rotating first whenever the next lines would not fit.
func (s *fileSink) Write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("audit: write %s: %w", s.path, os.ErrClosed)
	}
	for len(p) > 0 {
		room := s.maxBytes - s.size
		if int64(len(p)) <= room {
			return s.write(p)
		}
		// Write the lines that still fit. An empty file takes at least one
		// line, however long, so that an oversized line cannot stall.
		n := 0
		if room > 0 {
			n = bytes.LastIndexByte(p[:room], '\n') + 1
		}
		if n == 0 && s.size == 0 {
			if n = bytes.IndexByte(p, '\n') + 1; n == 0 {
				n = len(p)
			}
		}
		if err := s.write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
		if err := s.rotate(); err != nil {
			// Keep the records: they go to the current file, over its limit.
			return errors.Join(err, s.write(p))
		}
	}
	return nil
}

// write appends p to the current file and counts the bytes written.
func (s *fileSink) write(p []byte) error {
	n, err := s.f.Write(p)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// rotate shifts the rotated files up by one, moves the current file to
// path.1 and opens a new current file. A symbolic link at a rotated name
// stops it before anything is renamed. On error the current file stays
// open and in use.
func (s *fileSink) rotate() error {
	name := s.rotated
	if err := s.checkRotated(); err != nil {
		return err
	}
	if err := os.Remove(name(s.keep)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	for i := s.keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit: rotate: %w", err)
		}
	}
	if err := os.Rename(s.path, name(1)); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	f, size, err := openLog(s.path)
	if err != nil {
		// s.f now writes to path.1; carry on there until a later rotation
		// succeeds.
		return fmt.Errorf("audit: rotate: %w", err)
	}
	old := s.f
	s.f, s.size = f, size
	if err := old.Close(); err != nil {
		return fmt.Errorf("audit: rotate: close %s: %w", name(1), err)
	}
	return nil
}

// Close closes the file. Closing a closed fileSink does nothing.
func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

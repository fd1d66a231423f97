package contain

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// maxStateFile bounds the state file, read at start and written after
// changes: DefaultMaxEntries of each kind at well under 512 bytes each
// without evidence. A variable only so tests can lower it.
var maxStateFile = 64 << 20

// State is the content of the state file.
type State struct {
	Version     int          `json:"version"`
	Saved       time.Time    `json:"saved"`
	Quarantines []Quarantine `json:"quarantines"`
	Blocks      []Block      `json:"blocks"`
}

// CorruptError reports a state file that could not be read as state. The
// file has been renamed to Aside (empty if the rename failed too).
type CorruptError struct {
	Path  string
	Aside string
	Err   error
}

func (e *CorruptError) Error() string {
	if e.Aside == "" {
		return fmt.Sprintf("state file %s is corrupt (%v) and could not be set aside", e.Path, e.Err)
	}
	return fmt.Sprintf("state file %s is corrupt (%v); set aside as %s", e.Path, e.Err, e.Aside)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// DecodeState parses the state file's content. It checks the format only;
// Restore checks each entry.
func DecodeState(data []byte) (State, error) {
	var st State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return State{}, err
	}
	if dec.More() {
		return State{}, errors.New("data after the state object")
	}
	if st.Version != stateVersion {
		return State{}, fmt.Errorf("unknown state version %d", st.Version)
	}
	return st, nil
}

// LoadState reads the state file at path. A missing file is empty state.
// A file that cannot be parsed is renamed to PATH.corrupt-TIMESTAMP and a
// *CorruptError is returned with empty state: a bad file is never fatal
// and is never overwritten before someone can look at it.
func LoadState(path string, now time.Time) (State, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{Version: stateVersion}, nil
	}
	if err != nil {
		return State{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(maxStateFile)+1))
	f.Close()
	if err != nil {
		return State{}, err
	}
	if len(data) > maxStateFile {
		err = fmt.Errorf("larger than %d bytes", maxStateFile)
	} else {
		var st State
		if st, err = DecodeState(data); err == nil {
			return st, nil
		}
	}
	ce := &CorruptError{Path: path, Err: err}
	aside := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	if rerr := os.Rename(path, aside); rerr == nil {
		ce.Aside = aside
	}
	return State{Version: stateVersion}, ce
}

// SaveState writes st to path atomically: a temporary file in the same
// directory (mode 0600), fsync, rename over path, fsync of the directory.
// A reader sees the old file or the new one, never a mix.
func SaveState(path string, st State) error {
	st.Version = stateVersion
	if st.Quarantines == nil {
		st.Quarantines = []Quarantine{}
	}
	if st.Blocks == nil {
		st.Blocks = []Block{}
	}
	data, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	if len(data) >= maxStateFile && hasEvidence(st) {
		// Never write a file LoadState would refuse as corrupt at the
		// next start. Evidence (up to 16 names per quarantine) is what
		// can make it that big, and enforcement does not need it: the
		// audit records keep it.
		st.Quarantines = slices.Clone(st.Quarantines)
		for i := range st.Quarantines {
			st.Quarantines[i].Evidence = nil
		}
		if data, err = json.MarshalIndent(st, "", " "); err != nil {
			return err
		}
	}
	if len(data) >= maxStateFile {
		return fmt.Errorf("state of %d quarantines and %d blocks is larger than %d bytes; the previous file is kept",
			len(st.Quarantines), len(st.Blocks), maxStateFile)
	}
	data = append(data, '\n')
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileAtomic writes path with write: to a temporary file in the same
// directory (mode 0600), synced and renamed over path, then the directory
// synced. A reader sees the old file or the new one, never a mix, and a
// failed write leaves the old file and no temporary one.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	w := bufio.NewWriterSize(tmp, 256<<10)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: not every filesystem syncs a directory
		d.Close()
	}
	return nil
}

func hasEvidence(st State) bool {
	for _, q := range st.Quarantines {
		if len(q.Evidence) > 0 {
			return true
		}
	}
	return false
}

// Snapshot returns the store's state for SaveState.
func (s *Store) Snapshot(now time.Time) State {
	return State{Version: stateVersion, Saved: now.UTC(), Quarantines: s.Quarantines(), Blocks: s.Blocks()}
}

// Restore adds the entries of st that are valid and have not expired at
// now, keeping their actor, reason, start and expiry; an expiry beyond
// the configured maximum from now is cut to it. It returns how many were
// restored and how many were skipped as invalid or expired. Restore does
// not replace entries already held. It does not apply the address-space
// cap: what is restored was accepted before (maybe by force), and a
// restart or a reload must not release anyone.
func (s *Store) Restore(st State, now time.Time) (restored, skipped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []netip.Prefix
	for _, q := range st.Quarantines {
		p := q.Client
		if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() ||
			(p.Addr().Is4() && p.Bits() < MinBits4) || (p.Addr().Is6() && p.Bits() < MinBits6) ||
			!now.Before(q.Expires) || len(s.quar) >= s.opt.MaxEntries {
			skipped++
			continue
		}
		// An older file may hold IPv6 hosts as /128s: they become their
		// /64 (the first one restored wins).
		p = normPrefix(p)
		if _, ok := s.quar[p]; ok {
			skipped++
			continue
		}
		if lim := now.Add(s.opt.MaxTTL); q.Expires.After(lim) {
			q.Expires = lim
		}
		q.Client = p
		q.Reason, q.Actor, q.Evidence = clip(q.Reason, maxReason), clip(q.Actor, maxActor), clipEvidence(q.Evidence)
		s.put(newEntry(q))
		keys = append(keys, p)
		restored++
	}
	for _, b := range st.Blocks {
		n, err := NormalizeName(b.Name)
		if err != nil || !now.Before(b.Expires) || len(s.blocks) >= s.opt.MaxEntries {
			skipped++
			continue
		}
		if _, ok := s.blocks[n]; ok {
			skipped++
			continue
		}
		if lim := now.Add(s.opt.BlockMaxTTL); b.Expires.After(lim) {
			b.Expires = lim
		}
		b.Name = n
		b.Reason, b.Actor = clip(b.Reason, maxReason), clip(b.Actor, maxActor)
		s.blocks[n] = newBlockEntry(b)
		restored++
	}
	if restored > 0 {
		s.publish(keys, restored > len(keys))
	}
	return restored, skipped
}

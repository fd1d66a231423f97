package blocklist

import (
	"errors"
	"io"
	"os"
	"time"
)

// DefaultSettle is how long a changed list file must stay unchanged before
// the watcher loads it, when Config.Settle is zero.
const DefaultSettle = 2 * time.Second

// unterminatedFactor times the settle window is how long a file whose last
// line has no terminator must stay unchanged before it loads anyway.
const unterminatedFactor = 5

// errUnsettled reports that a list file changed between the watcher's
// decision to load it and the end of the read. The watcher waits for it
// to settle again; it is not a failed update.
var errUnsettled = errors.New("list file changed while it was read")

// fileState is what the watcher knows of a list file when it decides
// whether the file has settled.
type fileState struct {
	sig fileSig
	// renamed reports that the file was renamed into place: file events
	// showed it appear at the list's path with no write to it since.
	renamed bool
	// complete reports whether the file is empty or its last byte ends a
	// line ('\n' or '\r').
	complete bool
}

// statFile returns the state of the file at path, following symlinks.
func statFile(path string) (fileState, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileState{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileState{}, err
	}
	st := fileState{sig: sigOf(fi), complete: true}
	if fi.Mode().IsRegular() && fi.Size() > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil && err != io.EOF {
			return fileState{}, err
		}
		st.complete = last[0] == '\n' || last[0] == '\r'
	}
	return st, nil
}

// settleVerdict is the outcome of settled.
type settleVerdict struct {
	load         bool          // load the file now
	wait         time.Duration // otherwise look again after this long
	unterminated bool          // load despite an incomplete last line: it stayed unchanged for unterminatedFactor×settle
}

// settled decides whether a list file in state st may be loaded at now.
// loaded is the signature of the file the list last read, zero if none;
// seen is when the watcher first saw st.sig. A file has settled when its
// last line is complete and it has been unchanged for the settle window,
// judged by its modification time (or by seen, when the modification time
// lies in the future). A non-empty file renamed into place over the one
// last read is complete at once: the writer finished it under another
// name. A file whose last line never ends loads after
// unterminatedFactor×settle.
func settled(st fileState, loaded fileSig, seen, now time.Time, settle time.Duration) settleVerdict {
	quietSince := time.Unix(0, st.sig.mtime)
	if quietSince.After(now) {
		quietSince = seen
	}
	quiet := now.Sub(quietSince)
	newInode := loaded != (fileSig{}) && (st.sig.dev != loaded.dev || st.sig.ino != loaded.ino)
	switch {
	case st.complete && (quiet >= settle || newInode && st.renamed && st.sig.size > 0):
		return settleVerdict{load: true}
	case st.complete:
		return settleVerdict{wait: settle - quiet}
	case quiet >= unterminatedFactor*settle:
		return settleVerdict{load: true, unterminated: true}
	default:
		return settleVerdict{wait: unterminatedFactor*settle - quiet}
	}
}

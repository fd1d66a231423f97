package blocklist

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/fsnotify/fsnotify"
)

var log = clog.NewWithPlugin("shield")

// WatchOptions tunes a Watcher. Zero values take the defaults.
type WatchOptions struct {
	// Debounce is how long the watcher waits after the last file event
	// before reloading (default 300ms); a stream of events reloads at the
	// latest after 4×Debounce.
	Debounce time.Duration
	// Poll is the interval of the fallback poll, which compares each
	// file's inode, size and modification time (default 2s). It catches
	// what fsnotify misses: network filesystems, an exhausted inotify
	// limit, a symlink target in a directory nobody watches.
	Poll time.Duration
	// OnLoad is called after every load attempt that changed the list or
	// failed. It runs on the watcher's goroutine.
	OnLoad func(l *List, changed bool, err error)
}

// Watcher keeps a set of lists current. Start it once and Stop it once.
//
// A changed file is loaded only once it has settled (see settled): a file
// still being written is never put in force half-finished.
type Watcher struct {
	lists []*List
	opt   WatchOptions
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	// waiting holds the changed files that have not settled yet. LoadAll
	// fills it before Start; afterwards only the watcher's goroutine
	// uses it.
	waiting map[*List]*waiter
	now     func() time.Time // time.Now; tests move the clock
}

// waiter is a changed list file the watcher waits on.
type waiter struct {
	sig    fileSig   // the file's signature when last looked at
	seen   time.Time // when the watcher first saw sig
	due    time.Time // when to look again
	logged bool      // the missing final newline was logged for sig
}

// NewWatcher returns a Watcher for lists.
func NewWatcher(lists []*List, opt WatchOptions) *Watcher {
	if opt.Debounce <= 0 {
		opt.Debounce = 300 * time.Millisecond
	}
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	return &Watcher{lists: lists, opt: opt, stop: make(chan struct{}), done: make(chan struct{}),
		waiting: make(map[*List]*waiter), now: time.Now}
}

// LoadAll loads every list once, synchronously, reporting each result
// through OnLoad. It does not wait for a file to settle: with no version
// in force there is nothing to protect, and a list that is still being
// written is reloaded once it settles. Only a file whose last line is
// incomplete is left to the watcher, which loads it once it has settled.
func (w *Watcher) LoadAll() {
	now := w.now()
	for _, l := range w.lists {
		if st, err := statFile(l.cfg.Path); err == nil && !st.complete {
			w.consider(l, now, false) // loads an old file, or waits
			continue
		}
		w.load(l, nil)
	}
}

// load loads l, from the file with signature want when want is not nil,
// and reports the result through OnLoad. A file that changed under the
// read goes back to waiting.
func (w *Watcher) load(l *List, want *fileSig) {
	changed, err := l.loadChecked(want)
	if err == errUnsettled {
		now := w.now()
		w.waiting[l] = &waiter{seen: now}
		w.consider(l, now, false)
		return
	}
	if (changed || err != nil) && w.opt.OnLoad != nil {
		w.opt.OnLoad(l, changed, err)
	}
}

// consider looks at l's file after a change and loads it if it has
// settled; otherwise it keeps the file waiting and sets when to look
// again. A file that cannot be opened is loaded at once, so that the
// failure is reported as before.
//
// renamed reports that file events showed the file renamed into place
// and not written since: such a file loads without waiting.
func (w *Watcher) consider(l *List, now time.Time, renamed bool) {
	st, err := statFile(l.cfg.Path)
	if err != nil {
		delete(w.waiting, l)
		w.load(l, nil)
		return
	}
	st.renamed = renamed
	wt := w.waiting[l]
	if wt == nil || wt.sig != st.sig {
		wt = &waiter{sig: st.sig, seen: now}
		w.waiting[l] = wt
	}
	v := settled(st, l.readSig(), wt.seen, now, l.settle())
	if !v.load {
		wt.due = now.Add(v.wait)
		return
	}
	delete(w.waiting, l)
	if v.unterminated && !wt.logged {
		log.Warningf("list %q: %s does not end in a newline; loading it after %s unchanged (publish lists by renaming a complete file into place)",
			l.cfg.Name, l.cfg.Path, unterminatedFactor*l.settle())
	}
	w.load(l, &st.sig)
}

// nextDue returns when the earliest waiting file is due, and false when
// none waits.
func (w *Watcher) nextDue() (time.Time, bool) {
	var next time.Time
	for _, wt := range w.waiting {
		if next.IsZero() || wt.due.Before(next) {
			next = wt.due
		}
	}
	return next, !next.IsZero()
}

// Start starts watching in the background. If fsnotify cannot be set up
// the watcher polls only, and the error is returned for logging.
func (w *Watcher) Start() error {
	fw, err := fsnotify.NewWatcher()
	if err == nil {
		for _, d := range w.dirs() {
			if aerr := fw.Add(d); aerr != nil && err == nil {
				err = aerr
			}
		}
	} else {
		fw = nil
	}
	go w.run(fw)
	return err
}

// Stop stops the watcher and waits for its goroutine to end.
func (w *Watcher) Stop() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// dirs returns the directories to watch: each list's own directory and,
// when the path is a symlink, the directory of its target.
func (w *Watcher) dirs() []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, l := range w.lists {
		add(filepath.Dir(filepath.Clean(l.cfg.Path)))
		if t, err := filepath.EvalSymlinks(l.cfg.Path); err == nil {
			add(filepath.Dir(t))
		}
	}
	return out
}

// concerns reports whether a file event on path may change list l: an
// event on the file itself, on a ".."-prefixed entry beside it (the
// Kubernetes ConfigMap "..data" swap), or, when the list's path is a
// symlink, on the file it points to. Events on other files in the same
// directories (an audit log, an editor's swap file) do not concern it:
// each would cost a full parse of the list.
func concerns(l *List, path string) bool {
	p := filepath.Clean(l.cfg.Path)
	if path == p {
		return true
	}
	dir, base := filepath.Split(path)
	dir = filepath.Clean(dir)
	if dir == filepath.Dir(p) && strings.HasPrefix(base, "..") {
		return true
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if t, err := filepath.EvalSymlinks(p); err == nil && filepath.Clean(t) == path {
			return true
		}
	}
	return false
}

func (w *Watcher) run(fw *fsnotify.Watcher) {
	defer close(w.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fw != nil {
		defer fw.Close()
		events, errs = fw.Events, fw.Errors
	}
	poll := time.NewTicker(w.opt.Poll)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	// arm sets the settle timer for the earliest waiting file.
	arm := func() {
		settle.Stop()
		if next, ok := w.nextDue(); ok {
			settle.Reset(max(next.Sub(w.now()), 0))
		}
	}
	arm()
	// dirty holds the lists with file events since the last debounce,
	// and whether those events were only the appearance of a new file at
	// the list's path (a rename into place, not a write).
	type fileEvents struct{ created, written bool }
	dirty := make(map[*List]*fileEvents)
	var first, last time.Time // the first and the last event of the batch
	for {
		select {
		case <-w.stop:
			debounce.Stop()
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			for _, l := range w.lists {
				if concerns(l, ev.Name) {
					e := dirty[l]
					if e == nil {
						e = &fileEvents{}
						dirty[l] = e
					}
					e.created = e.created || ev.Has(fsnotify.Create)
					e.written = e.written || ev.Has(fsnotify.Write)
				}
			}
			if len(dirty) == 0 {
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			last = now
			wait := w.opt.Debounce
			if limit := first.Add(4 * w.opt.Debounce); now.Add(wait).After(limit) {
				wait = max(limit.Sub(now), 0)
			}
			debounce.Reset(wait)
		case _, ok := <-errs:
			if !ok {
				errs = nil
			}
			// Overflow or watch errors: the poll covers what was missed.
		case <-debounce.C:
			// A batch cut short by the 4×Debounce limit may not have
			// seen the writes that follow a file's creation yet: only a
			// batch that ended in quiet vouches for a rename.
			quiet := time.Since(last) >= w.opt.Debounce
			now := w.now()
			for l, e := range dirty {
				w.consider(l, now, quiet && e.created && !e.written)
				delete(dirty, l)
			}
			first = time.Time{}
			arm()
		case <-settle.C:
			now := w.now()
			for l, wt := range w.waiting {
				if !wt.due.After(now) {
					w.consider(l, now, false)
				}
			}
			arm()
		case <-poll.C:
			now := w.now()
			for _, l := range w.lists {
				if w.waiting[l] == nil && l.Changed() {
					w.consider(l, now, false)
				}
			}
			arm()
		}
	}
}

package blocklist

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

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
type Watcher struct {
	lists []*List
	opt   WatchOptions
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// NewWatcher returns a Watcher for lists.
func NewWatcher(lists []*List, opt WatchOptions) *Watcher {
	if opt.Debounce <= 0 {
		opt.Debounce = 300 * time.Millisecond
	}
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	return &Watcher{lists: lists, opt: opt, stop: make(chan struct{}), done: make(chan struct{})}
}

// LoadAll loads every list once, synchronously, reporting each result
// through OnLoad.
func (w *Watcher) LoadAll() {
	for _, l := range w.lists {
		w.load(l)
	}
}

func (w *Watcher) load(l *List) {
	changed, err := l.Load()
	if (changed || err != nil) && w.opt.OnLoad != nil {
		w.opt.OnLoad(l, changed, err)
	}
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
	dirty := make(map[*List]bool)
	var first time.Time
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
					dirty[l] = true
				}
			}
			if len(dirty) == 0 {
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
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
			for l := range dirty {
				w.load(l)
				delete(dirty, l)
			}
			first = time.Time{}
		case <-poll.C:
			for _, l := range w.lists {
				if l.Changed() {
					w.load(l)
				}
			}
		}
	}
}

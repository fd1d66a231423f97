package blocklist

// LoadFile is Load for the content of the file at path instead of the
// configured path: the same parse, the same checks (empty, garbage,
// shrink, size, gzip) and the same result. A feed fetcher downloads to a
// temporary file and puts it in force through LoadFile, so nothing from the
// network replaces a list without passing the checks a local file passes.
// LoadFile does not change what Changed compares; a list loaded this way
// is not meant for a Watcher.
func (l *List) LoadFile(path string) (bool, error) {
	l.attempts.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	changed, err := l.loadFrom(path, nil)
	l.lastErr = err
	return changed, err
}

// SetError records err as the result of the latest update attempt, as
// LastError reports it. A feed fetcher calls it for a fetch refused before
// its content reached LoadFile (an error status, an HTML page, a timeout),
// and with nil when the feed confirmed the list in force.
func (l *List) SetError(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastErr = err
}

package blocklist

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxDecompressed is the most bytes a gzip-compressed list file may expand
// to. A bigger one is refused (FailSize): a small file must not be able to
// fill the disk cache or keep the parser busy for minutes.
const MaxDecompressed = 256 << 20

// Reasons a load is refused, beside those in list.go.
const (
	FailGzip = "gzip" // the file is gzip-compressed but corrupt or truncated
	FailSize = "size" // the content is bigger than MaxDecompressed
)

// gzipMagic opens every gzip stream (RFC 1952, section 2.3.1).
var gzipMagic = []byte{0x1f, 0x8b}

// IsGzip reports whether head, the first bytes of a file or body, opens a
// gzip stream.
func IsGzip(head []byte) bool { return bytes.HasPrefix(head, gzipMagic) }

// maxDecompressed is MaxDecompressed; tests lower it.
var maxDecompressed int64 = MaxDecompressed

// errTooBig ends a read that went past the cap.
var errTooBig = errors.New("gzip-compressed content is bigger than the cap of 256 MiB")

// errCompressed wraps every error gzip returns, so that the log says the
// file is compressed instead of quoting its binary bytes.
type errCompressed struct{ err error }

func (e *errCompressed) Error() string {
	return fmt.Sprintf("file is gzip-compressed and cannot be decompressed (corrupt or truncated): %v", e.err)
}
func (e *errCompressed) Unwrap() error { return e.err }

// content returns a reader of the list text in f and its expected size: f
// itself, or, when f starts with the gzip magic bytes, its decompressed
// content, capped at MaxDecompressed. The caller has not read from f yet.
func content(f *os.File, size int64) (io.Reader, int64, error) {
	var head [2]byte
	if n, _ := f.ReadAt(head[:], 0); !IsGzip(head[:n]) {
		return f, size, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, 0, &errCompressed{err}
	}
	// Lists compress about fourfold; the size only sizes the builder.
	return &gunzipReader{zr: zr, left: maxDecompressed}, min(4*size, maxDecompressed), nil
}

// gunzipReader reads decompressed bytes up to a cap and marks gzip's
// errors as such.
type gunzipReader struct {
	zr   *gzip.Reader
	left int64
}

func (g *gunzipReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		// One byte more tells a stream of exactly the cap from a bigger one.
		var one [1]byte
		if n, err := g.zr.Read(one[:]); n == 0 && err == io.EOF {
			return 0, io.EOF
		}
		return 0, errTooBig
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.zr.Read(p)
	g.left -= int64(n)
	if err != nil && err != io.EOF {
		err = &errCompressed{err}
	}
	return n, err
}

// readFail returns the refusal for a read error: too big, a broken gzip
// stream, or a plain read error.
func (l *List) readFail(err error) error {
	var ce *errCompressed
	var fe flate.CorruptInputError
	switch {
	case errors.Is(err, errTooBig):
		return l.fail(FailSize, err)
	case errors.As(err, &ce), errors.As(err, &fe):
		return l.fail(FailGzip, err)
	}
	return l.fail(FailRead, err)
}

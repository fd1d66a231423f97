//go:build unix

package blocklist

import (
	"os"
	"syscall"
)

// fileSig identifies a file's content cheaply: a replaced file changes its
// inode, an edited one its size or modification time.
type fileSig struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func statSig(path string) (fileSig, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileSig{}, err
	}
	return sigOf(fi), nil
}

// sigOf returns the signature of the file fi describes.
func sigOf(fi os.FileInfo) fileSig {
	s := fileSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return s
}

//go:build !unix

package blocklist

import "os"

// fileSig identifies a file's content cheaply where there are no inode
// numbers (windows, plan9, wasm): by its size and modification time.
type fileSig struct {
	size  int64
	mtime int64
}

func statSig(path string) (fileSig, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileSig{}, err
	}
	return fileSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}, nil
}

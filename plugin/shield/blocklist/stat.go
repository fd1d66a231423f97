package blocklist

import "os"

// fileSig identifies a file's content cheaply: a replaced file changes its
// inode, an edited one its size or modification time.
type fileSig struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// statSig returns the signature of the file at path, following symlinks.
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
	s.dev, s.ino = fileID(fi)
	return s
}

//go:build !unix

package blocklist

import "os"

// fileID returns zeros: without inodes, a replaced file is told from an
// edited one by its size and modification time only.
func fileID(os.FileInfo) (dev, ino uint64) { return 0, 0 }

//go:build unix

package audit

import (
	"errors"
	"syscall"
)

// oNoFollow makes opening a symbolic link fail instead of following it.
const oNoFollow = syscall.O_NOFOLLOW

// isSymlinkErr reports whether err is what opening a symbolic link with
// O_NOFOLLOW returns: ELOOP, or EMLINK on FreeBSD. NetBSD returns EFTYPE,
// which package syscall does not name everywhere; there the error is
// reported as it is (the Lstat check before opening names the link).
func isSymlinkErr(err error) bool {
	return errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK)
}

//go:build !unix

package audit

// oNoFollow is 0 where the system has no O_NOFOLLOW: the Lstat check
// before opening is the only guard there.
const oNoFollow = 0

// isSymlinkErr reports false: without O_NOFOLLOW, opening never fails
// because of a link.
func isSymlinkErr(error) bool { return false }

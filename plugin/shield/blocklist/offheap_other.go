//go:build !unix

package blocklist

// mapRegion returns n bytes of zeroed memory; off-heap memory is only used
// on unix systems.
func mapRegion(n int) ([]byte, func()) { return make([]byte, n), nil }

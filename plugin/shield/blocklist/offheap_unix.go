//go:build unix

package blocklist

import "syscall"

// mapRegion returns n bytes of zeroed memory outside the Go heap and a
// function that releases it. A big list lives there so that its size does
// not raise the garbage collector's heap goal: with GOGC=100 every byte of
// live heap lets another byte of garbage accumulate before a collection,
// which would double a million-name list's cost in resident memory. The
// arrays hold no pointers, so the collector never needs to see them.
func mapRegion(n int) ([]byte, func()) {
	if n < offHeapMin {
		return make([]byte, n), nil
	}
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), nil
	}
	return b, func() { syscall.Munmap(b) }
}

package shield

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time the calling thread has used, and whether
// the platform tells it. Benchmarks lock their goroutine to its thread and
// report this beside the wall time, which a loaded machine inflates.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

#ifndef GRAIL_COMMON_MEMORY_H_
#define GRAIL_COMMON_MEMORY_H_

// Process memory settings for the services' large, short-lived buffers.
//
// Transparent huge pages for large buffers that are written once, right after they are
// allocated: a weights blob as it is received or serialised, a packed copy of a weight.
// Such a buffer is a fresh mapping every time (glibc maps blocks above 32 MiB anew), and its
// first write takes one page fault per 4 KiB page, each zeroed by the kernel; on a
// virtualised host every fault is also an exit to the hypervisor. Backed by 2 MiB pages it
// takes 512 times fewer (README, "Benchmarks": weight sync).

#include <malloc.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

namespace grail {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Asks the kernel to back the whole 2 MiB pages inside [p, p + n) with transparent huge pages,
// where the system lets a process ask (/sys/kernel/mm/transparent_hugepage/enabled is
// "madvise" or "always"). Call it before the range is first written. Best effort: a range
// with no whole huge page, or a system without the feature, is left as it is.
inline void AdviseHugePages(void* p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t begin = (start + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
  const uintptr_t end = (start + n) & ~(uintptr_t{kHugePageBytes} - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}

// Reserves room for `n` bytes in the empty string `s`, advised as above.
inline void ReserveWithHugePages(std::string* s, size_t n) {
  s->reserve(n);
  AdviseHugePages(s->data(), s->capacity());
}

// Keeps freed heap memory for reuse instead of returning it to the system. glibc serves
// blocks above its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh mappings and
// trims the heap's top on free, so buffers of the same size allocated again every step (a
// training step's activations, gRPC's 4 MiB weights chunks) are faulted in and zeroed by
// the kernel again each time. The largest threshold and no trimming keep them in the heap;
// resident memory stays at its peak.
inline void KeepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

}  // namespace grail

#endif  // GRAIL_COMMON_MEMORY_H_

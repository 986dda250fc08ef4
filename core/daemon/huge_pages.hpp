// SPDX-License-Identifier: GPL-2.0-or-later
// Transparent huge pages for the daemon's heap (ADR-040): glibc's malloc advises the kernel to back its heap
// with 2 MiB pages when GLIBC_TUNABLES holds glibc.malloc.hugetlb=1, which glibc reads only at start. The
// caches grow by hundreds of MB during a burst; with 4 KiB pages every 4 KiB costs a page fault and the hash
// tables' random accesses miss the TLB.
#pragma once

#include <optional>
#include <string>

namespace ctsync::core {

// The GLIBC_TUNABLES value to run with, given the current one (null when unset): nullopt when the current
// value already names glibc.malloc.hugetlb (the operator decided, =0 included), else the current value
// with glibc.malloc.hugetlb=1 appended.
std::optional<std::string> tunables_with_huge_pages(const char* current);

// Executes this program again (same pid, arguments and descriptors) with tunables_with_huge_pages() in its
// environment, once: returns only when nothing needs changing or the exec failed. Call first in main(),
// before any thread, descriptor or output exists.
void reexec_with_huge_pages(char** argv) noexcept;

}  // namespace ctsync::core

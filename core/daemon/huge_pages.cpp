// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/huge_pages.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace ctsync::core {

std::optional<std::string> tunables_with_huge_pages(const char* current) {
    constexpr std::string_view kTunable = "glibc.malloc.hugetlb";
    const std::string value = current != nullptr ? current : "";
    if (value.find(kTunable) != std::string::npos) {
        return std::nullopt;
    }
    return value.empty() ? std::string(kTunable) + "=1" : value + ":" + std::string(kTunable) + "=1";
}

void reexec_with_huge_pages(char** argv) noexcept {
    try {
        const char* current = std::getenv("GLIBC_TUNABLES");
        const std::optional<std::string> before =
            current != nullptr ? std::optional<std::string>(current) : std::nullopt;
        auto tunables = tunables_with_huge_pages(current);
        if (!tunables || setenv("GLIBC_TUNABLES", tunables->c_str(), 1) != 0) {
            return;
        }
        execv("/proc/self/exe", argv);
        // Not fatal: the daemon runs with 4 KiB pages, as before, and its environment as it was.
        if (before) {
            setenv("GLIBC_TUNABLES", before->c_str(), 1);
        } else {
            unsetenv("GLIBC_TUNABLES");
        }
    } catch (...) {
        // Out of memory before main() did anything: go on without.
    }
}

}  // namespace ctsync::core

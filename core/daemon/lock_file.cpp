// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/lock_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ctsync::core {

LockFile::~LockFile() {
    if (fd_ >= 0) {
        ::close(fd_);  // releases the flock
    }
}

std::string LockFile::acquire(const std::filesystem::path& path) {
    std::error_code ec;
    if (path.has_parent_path()) {
        std::filesystem::create_directories(path.parent_path(), ec);
    }
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return fmt::format("cannot open lock file '{}': {}", path.string(), std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char buffer[32] = {};
        ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
        ::close(fd);
        if (err == EWOULDBLOCK) {
            std::string holder = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "unknown";
            while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) {
                holder.pop_back();
            }
            return fmt::format(
                "lock file '{}' is held by another ctsyncd (pid {}); give each instance its own "
                ".daemon.lock_file",
                path.string(), holder);
        }
        return fmt::format("cannot lock '{}': {}", path.string(), std::strerror(err));
    }
    std::string pid = fmt::format("{}\n", ::getpid());
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        int err = errno;
        ::close(fd);
        return fmt::format("cannot write pid to lock file '{}': {}", path.string(), std::strerror(err));
    }
    fd_ = fd;
    return {};
}

}  // namespace ctsync::core

// SPDX-License-Identifier: GPL-2.0-or-later
// The per-instance lock file: an flock()ed file holding the owner's pid. The kernel drops the lock when
// the process dies, so a stale file never blocks a restart.
#pragma once

#include <filesystem>
#include <string>

namespace ctsync::core {

class LockFile {
  public:
    LockFile() = default;
    LockFile(const LockFile&) = delete;
    LockFile& operator=(const LockFile&) = delete;
    ~LockFile();

    // Creates missing parent directories, takes the lock and writes this pid. Returns an error message
    // naming the holder's pid when another process holds it; empty on success.
    std::string acquire(const std::filesystem::path& path);

  private:
    int fd_ = -1;
};

}  // namespace ctsync::core

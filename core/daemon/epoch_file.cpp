// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/epoch_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace ctsync::core {

namespace fs = std::filesystem;

std::uint64_t wall_clock_us() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

EpochChoice next_epoch(const fs::path& file, std::uint64_t now_us) {
    EpochChoice out;
    std::error_code ec;
    if (fs::exists(file, ec)) {
        std::ifstream in(file);
        std::stringstream text;
        text << in.rdbuf();
        std::string s = text.str();
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
            s.pop_back();
        }
        std::uint64_t v = 0;
        auto [p, err] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (!in || err != std::errc() || p != s.data() + s.size() || s.empty()) {
            out.warning = fmt::format("{} does not hold an epoch (a decimal number): ignored and rewritten",
                                      file.string());
        } else {
            out.previous = v;
        }
    }
    out.epoch = out.previous >= now_us ? out.previous + 1 : now_us;
    // Write a new file and rename it over the old one, synced: a crash leaves the old or the new value.
    const fs::path tmp = file.string() + ".new";
    auto fail = [&](const char* what) {
        const std::string why = fmt::format("cannot {} {}: {}", what, tmp.string(), std::strerror(errno));
        out.warning += (out.warning.empty() ? "" : "; ") + why +
                       " (the next run's epoch may not be higher if the clock steps back)";
    };
    fs::create_directories(file.parent_path(), ec);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail("create");
        return out;
    }
    const std::string line = std::to_string(out.epoch) + "\n";
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    const bool synced = written && ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) {
        fail("write");
        ::unlink(tmp.c_str());
        return out;
    }
    if (::rename(tmp.c_str(), file.c_str()) != 0) {
        fail("rename");
        ::unlink(tmp.c_str());
        return out;
    }
    if (const int dir = ::open(file.parent_path().empty() ? "." : file.parent_path().c_str(),
                               O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
    return out;
}

}  // namespace ctsync::core

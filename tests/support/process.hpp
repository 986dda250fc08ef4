// SPDX-License-Identifier: GPL-2.0-or-later
// Child processes for tests: spawned with their output captured to files, waited on with a bound, and
// ended by PID only (never by name). A Process still running when destroyed is killed and reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ctsync::test {

struct RunResult {
    int exit_code = -1;  // -1 when killed by a signal or timed out
    bool timed_out = false;
    std::string out;
    std::string err;
};

class Process {
  public:
    // Starts `argv` with `env` added to this process's environment. Output goes to files under a fresh
    // temporary directory. Throws std::runtime_error when the program cannot be started.
    Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    ~Process();

    pid_t pid() const { return pid_; }
    bool running();
    // Waits up to `timeout` for the exit; returns the exit code, or nullopt if still running (or signalled).
    std::optional<int> wait(std::chrono::milliseconds timeout);
    // SIGTERM, then SIGKILL after `grace`; returns the exit code if it exited normally.
    std::optional<int> terminate(std::chrono::milliseconds grace = std::chrono::seconds(5));
    bool signalled() const { return signalled_; }
    std::string out() const;
    std::string err() const;

  private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    bool signalled_ = false;
    int exit_code_ = -1;
    std::filesystem::path dir_;
};

// Runs to completion (killed after `timeout`) and returns code and output.
RunResult run(std::vector<std::string> argv, std::chrono::milliseconds timeout = std::chrono::seconds(60),
              std::map<std::string, std::string> env = {});

// Polls `condition` every `step` until it is true or `timeout` passed. Returns the last result.
template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (condition()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        struct timespec ts {
            0, static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(step).count())
        };
        nanosleep(&ts, nullptr);
    }
}

// A temporary directory removed with everything in it on destruction.
class TempDir {
  public:
    explicit TempDir(const std::string& prefix = "ctsync-test");
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

  private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& content);

}  // namespace ctsync::test

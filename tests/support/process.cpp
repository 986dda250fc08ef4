// SPDX-License-Identifier: GPL-2.0-or-later
#include "tests/support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace ctsync::test {
namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
    std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    }
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

void write_file(const fs::path& path, const std::string& content) {
    std::ofstream out(path, std::ios::trunc);
    out << content;
    if (!out) {
        throw std::runtime_error("cannot write " + path.string());
    }
}

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env) {
    std::string pattern = (fs::temp_directory_path() / "ctsync-proc-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    dir_ = pattern;
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string entry = *e;
        auto name = entry.substr(0, entry.find('='));
        if (env.count(name) == 0) {
            env_strings.push_back(entry);
        }
    }
    for (const auto& [name, value] : env) {
        env_strings.push_back(name + "=" + value);
    }
    std::vector<char*> envp;
    for (auto& s : env_strings) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    std::vector<char*> args;
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (dir_ / "out").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (dir_ / "err").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // Own process group, so that a test's SIGINT does not reach the child and the child is ended by PID.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    int rc = ::posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        throw std::runtime_error("cannot start " + argv.at(0) + ": " + std::strerror(rc));
    }
}

Process::~Process() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

bool Process::running() {
    if (reaped_) {
        return false;
    }
    return !wait(std::chrono::milliseconds(0)).has_value() && !reaped_;
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    if (reaped_) {
        return signalled_ ? std::nullopt : std::optional<int>(exit_code_);
    }
    bool done = wait_until(
        [&] {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                reaped_ = true;
                if (WIFEXITED(status)) {
                    exit_code_ = WEXITSTATUS(status);
                } else {
                    signalled_ = true;
                }
                return true;
            }
            return false;
        },
        timeout, std::chrono::milliseconds(5));
    if (!done || signalled_) {
        return std::nullopt;
    }
    return exit_code_;
}

std::optional<int> Process::terminate(std::chrono::milliseconds grace) {
    if (!reaped_) {
        ::kill(pid_, SIGTERM);
        if (!wait(grace).has_value() && !reaped_) {
            ::kill(pid_, SIGKILL);
            wait(std::chrono::seconds(10));
        }
    }
    return signalled_ ? std::nullopt : std::optional<int>(exit_code_);
}

std::string Process::out() const {
    return read_file(dir_ / "out");
}
std::string Process::err() const {
    return read_file(dir_ / "err");
}

RunResult run(std::vector<std::string> argv, std::chrono::milliseconds timeout,
              std::map<std::string, std::string> env) {
    Process p(std::move(argv), std::move(env));
    RunResult result;
    auto code = p.wait(timeout);
    if (!code && p.running()) {
        result.timed_out = true;
        p.terminate(std::chrono::seconds(2));
    }
    result.exit_code = code.value_or(-1);
    result.out = p.out();
    result.err = p.err();
    return result;
}

}  // namespace ctsync::test

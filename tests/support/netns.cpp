// SPDX-License-Identifier: GPL-2.0-or-later
#include "tests/support/netns.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

#include "tests/support/process.hpp"

namespace ctsync::test {

std::string NetNs::prefix() {
    return "ctsync-t" + std::to_string(::getpid()) + "-";
}

NetNs::NetNs(const std::string& suffix) : name_(prefix() + suffix) {
    auto added = run({"ip", "netns", "add", name_}, std::chrono::seconds(10));
    if (added.exit_code != 0) {
        throw std::runtime_error("ip netns add " + name_ + " failed: " + added.err);
    }
    auto up = run({"ip", "-n", name_, "link", "set", "lo", "up"}, std::chrono::seconds(10));
    if (up.exit_code != 0) {
        run({"ip", "netns", "del", name_}, std::chrono::seconds(10));
        throw std::runtime_error("cannot bring lo up in " + name_ + ": " + up.err);
    }
}

NetNs::~NetNs() {
    run({"ip", "netns", "del", name_}, std::chrono::seconds(10));
}

std::vector<std::string> NetNs::exec(std::vector<std::string> argv) const {
    std::vector<std::string> out = {"ip", "netns", "exec", name_};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

std::string NetNs::ns_id() const {
    struct stat st {};
    if (::stat(("/run/netns/" + name_).c_str(), &st) != 0) {
        return {};
    }
    return "net:[" + std::to_string(st.st_ino) + "]";
}

bool can_create_netns() {
    return ::geteuid() == 0;
}

}  // namespace ctsync::test

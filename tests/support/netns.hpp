// SPDX-License-Identifier: GPL-2.0-or-later
// Network namespaces for lab tests: created with a unique "ctsync-t<pid>-" prefix and deleted on
// destruction (and by scripts/lab-cleanup.sh should a test process die).
#pragma once

#include <sched.h>

#include <string>
#include <thread>
#include <vector>

namespace ctsync::test {

class NetNs {
  public:
    // Creates namespace "<prefix><suffix>" with loopback up. Throws std::runtime_error on failure.
    explicit NetNs(const std::string& suffix);
    NetNs(const NetNs&) = delete;
    NetNs& operator=(const NetNs&) = delete;
    ~NetNs();

    const std::string& name() const { return name_; }
    // argv prefixed with "ip netns exec <name>".
    std::vector<std::string> exec(std::vector<std::string> argv) const;
    // The namespace's inode as /proc/<pid>/ns/net shows it: "net:[4026532000]".
    std::string ns_id() const;

    static std::string prefix();

  private:
    std::string name_;
};

// Whether this process may create network namespaces (root with CAP_SYS_ADMIN).
bool can_create_netns();

// Runs `body` on a thread of its own, in a network namespace of that thread's own (unshare), and waits for
// it; false when the namespace could not be made. Sockets the body opens see only that namespace, which
// goes away with the thread.
template <class Body>
bool in_private_netns(Body body) {
    bool ok = false;
    std::thread t([&] {
        if (unshare(CLONE_NEWNET) != 0) {
            return;
        }
        ok = true;
        body();
    });
    t.join();
    return ok;
}

}  // namespace ctsync::test

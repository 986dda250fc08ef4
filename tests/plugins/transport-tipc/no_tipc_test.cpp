// SPDX-License-Identifier: GPL-2.0-or-later
// The real ctsyncd with a transport-tipc slot on a kernel without TIPC (this host: socket(AF_TIPC) gives
// EAFNOSUPPORT): it refuses to start with exit code 3 (a plugin refusal) and says why, naming the slot;
// `--check-config` on the same file succeeds, since validation needs no kernel support.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/core/daemon/daemon_test_util.hpp"

namespace ctsync::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

bool kernel_has_tipc() {
    const int fd = ::socket(AF_TIPC, SOCK_RDM, 0);
    if (fd >= 0) {
        ::close(fd);
        return true;
    }
    return false;
}

nlohmann::json tipc_config(const std::filesystem::path& dir) {
    auto config = instance_config(dir, 1);
    config["transports"] = {{{"plugin", "transport-tipc"}, {"name", "sync-tipc"}}};
    add_sync_key(config, dir);
    return config;
}

TEST(TransportTipcWithoutTipc, CtsyncdRefusesToStartWithExitCode3) {
    if (kernel_has_tipc()) {
        GTEST_SKIP() << "this kernel has TIPC (the VM's tests cover that case)";
    }
    TempDir dir;
    auto file = write_config(dir.path(), tipc_config(dir.path()));
    auto result = run({kCtsyncd, "-C", file.string()}, 30s);
    EXPECT_FALSE(result.timed_out) << result.err;
    EXPECT_EQ(result.exit_code, 3) << "a factory's refusal is a plugin refusal\n" << result.err;
    EXPECT_THAT(result.err,
                HasSubstr(".transports[0]: plugin 'transport-tipc' (instance 'sync-tipc') refused to start: "
                          "this kernel has no TIPC (socket: EAFNOSUPPORT); load the tipc module"));
    EXPECT_THAT(result.err, ::testing::Not(HasSubstr("terminate called")));
    // It never got as far as serving: no control socket is left behind.
    EXPECT_FALSE(std::filesystem::exists(dir / "ctsyncd.sock"));
}

TEST(TransportTipcWithoutTipc, CheckConfigNeedsNoTipc) {
    TempDir dir;
    auto file = write_config(dir.path(), tipc_config(dir.path()));
    auto result = run({kCtsyncd, "--check-config", file.string()}, 30s);
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    EXPECT_THAT(result.out + result.err, HasSubstr("sync-tipc (transport-tipc 0.1.0)"));
}

}  // namespace
}  // namespace ctsync::test

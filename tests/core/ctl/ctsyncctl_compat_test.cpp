// SPDX-License-Identifier: GPL-2.0-or-later
// The real ctsyncctl's conntrackd-style flags against a real ctsyncd (no kernel: no source plugin): parsing
// in any order with -C, one command per call, the caches through -s, -i, -e and -f, the errors a node
// without a source or without replication gives, the role flags, and -k.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"

namespace ctsync::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// ctsyncctl <args...>, bounded.
RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), kCtsyncctl);
    return run(args, 20s);
}

// Two UDP flows in the format of `dump --json`, for `import`.
std::filesystem::path write_table(const std::filesystem::path& dir) {
    nlohmann::json flows = nlohmann::json::array();
    for (int port : {5001, 5002}) {
        flows.push_back({{"original",
                          {{"family", "ipv4"},
                           {"protocol", 17},
                           {"src", "192.0.2.24"},
                           {"dst", "198.51.100.24"},
                           {"sport", port},
                           {"dport", 53}}},
                         {"reply",
                          {{"family", "ipv4"},
                           {"protocol", 17},
                           {"src", "198.51.100.24"},
                           {"dst", "192.0.2.24"},
                           {"sport", 53},
                           {"dport", port}}},
                         {"timeout", 29}});
    }
    auto file = dir / "table.json";
    write_file(file, nlohmann::json{{"flows", flows}}.dump());
    return file;
}

TEST(CtsyncctlCompat, CachesThroughConntrackdFlagsOnANodeWithoutKernelOrReplication) {
    TempDir dir;
    auto file = write_config(dir.path(), instance_config(dir.path(), 4));
    auto daemon = start_daemon(file);
    const std::string c = file.string();

    auto stats = ctl({"-C", c, "-s"});
    EXPECT_EQ(stats.exit_code, 0) << stats.err;
    EXPECT_EQ(stats.out,
              "cache internal:\ncurrent active connections:\t           0\n\n"
              "cache external:\ncurrent active connections:\t           0\n\n");

    auto imported = ctl({"-C", c, "import", write_table(dir.path()).string()});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    // Both orders of the action and -C; the optional argument before -C.
    for (const auto& args : std::vector<std::vector<std::string>>{{"-s", "-C", c}, {"-C", c, "-s"}}) {
        auto r = ctl(args);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_THAT(r.out, HasSubstr("cache external:\ncurrent active connections:\t           2\n"));
    }
    auto cache = ctl({"-s", "cache", "-C", c});
    EXPECT_EQ(cache.exit_code, 0) << cache.err;
    EXPECT_THAT(cache.out, HasSubstr("cache:external\tactive objects:\t\t           2\n"));

    auto external = ctl({"-C", c, "-e"});
    EXPECT_EQ(external.exit_code, 0) << external.err;
    EXPECT_THAT(external.out,
                HasSubstr("udp     17 29 src=192.0.2.24 dst=198.51.100.24 sport=5001 dport=53"));
    EXPECT_THAT(external.out, HasSubstr("sport=5002 dport=53"));
    EXPECT_THAT(external.out, HasSubstr("2 flows in the external cache\n"));
    auto expectations = ctl({"-e", "expect", "-C", c});
    EXPECT_EQ(expectations.out, "0 expectations in the external cache\n");
    auto internal = ctl({"-C", c, "-i", "ct"});
    EXPECT_EQ(internal.out, "0 flows in the internal cache\n");
    auto as_json = ctl({"-C", c, "-e", "--json"});
    EXPECT_EQ(nlohmann::json::parse(as_json.out, nullptr, false)["flows"].size(), 2u) << as_json.out;

    auto flushed = ctl({"-C", c, "-f", "external"});
    EXPECT_EQ(flushed.exit_code, 0) << flushed.err;
    EXPECT_EQ(flushed.out, "flushed the external cache: 2 entries removed\n");
    EXPECT_THAT(ctl({"-C", c, "-e"}).out, HasSubstr("0 flows in the external cache"));

    // No source: -R (and the internal half of -f) cannot read a kernel; -f still empties the external cache.
    auto resync = ctl({"-C", c, "-R"});
    EXPECT_EQ(resync.exit_code, 1);
    EXPECT_THAT(resync.err, HasSubstr("ctsyncctl: ctsyncd: no source plugin is configured (.source)"));
    auto both = ctl({"-C", c, "-f"});
    EXPECT_EQ(both.exit_code, 1);
    EXPECT_THAT(both.err, HasSubstr("no source plugin is configured"));
    EXPECT_EQ(both.out, "flushed the external cache: 0 entries removed\n");

    // No transports: what concerns peers is refused by the daemon.
    for (const std::string flag : {"-n", "-B"}) {
        auto r = ctl({flag, "-C", c});
        EXPECT_EQ(r.exit_code, 1) << flag;
        EXPECT_THAT(r.err, HasSubstr("replication is not configured (no transports in the config)")) << flag;
    }
    auto network = ctl({"-C", c, "-s", "network"});
    EXPECT_EQ(network.exit_code, 1);
    EXPECT_EQ(network.err,
              "ctsyncctl: replication is not configured (no transports in the config): -s network "
              "shows it\n");
    EXPECT_TRUE(daemon->running());
}

TEST(CtsyncctlCompat, OneCommandPerCallAndUsageErrors) {
    TempDir dir;
    auto file = write_config(dir.path(), instance_config(dir.path(), 5));
    const std::string c = file.string();
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{"-C", c}, "ctsyncctl: no command given: name a subcommand"},
        {{"-C", c, "-s", "-c"}, "ctsyncctl: one command per call, but 2 were given: -c, -s"},
        {{"-C", c, "-s", "status"}, "ctsyncctl: one command per call, but 2 were given: -s, status"},
        {{"-C", c, "-i", "-e", "-t"}, "ctsyncctl: one command per call, but 3 were given: -t, -i, -e"},
        {{"-C", c, "-d"}, "use ctsyncd -d"},
        {{"-C", c, "-x", "-i"}, "-x (XML output) is not supported: use --json"},
        {{"-C", c, "-s", "bogus"},
         "bogus not in {network,cache,runtime,link,rsqueue,process,queue,ct,expect}"},
        {{"-C", c, "-c", "all"}, "all not in {ct,expect}"},
        {{"-C", c, "-f", "kernel"}, "kernel not in {internal,external}"},
        {{"-C", c, "-k", "now"}, "now"},
    };
    for (const auto& k : cases) {
        auto r = ctl(k.args);
        EXPECT_EQ(r.exit_code, 2) << k.args.back() << ": " << r.err;
        EXPECT_THAT(r.err, HasSubstr(k.message)) << k.args.back();
    }
    // No daemon at that socket: exit 1, which conntrack-tools' primary-backup.sh tests after -s.
    auto unreachable = ctl({"-C", c, "-s"});
    EXPECT_EQ(unreachable.exit_code, 1);
    EXPECT_THAT(unreachable.err, HasSubstr("cannot reach ctsyncd at"));
    EXPECT_EQ(unreachable.out, "");
}

TEST(CtsyncctlCompat, RoleFlagsBulkAndKillWithReplication) {
    TempDir dir;
    auto config = instance_config(dir.path(), 6);
    config["transports"] = {{{"plugin", "transport-fixture"}, {"name", "link-a"}}};
    add_sync_key(config, dir.path());
    auto file = write_config(dir.path(), config);
    auto daemon = start_daemon(file);
    const std::string c = file.string();

    auto stats = ctl({"-C", c, "-s"});
    EXPECT_EQ(stats.exit_code, 0) << stats.err;
    EXPECT_THAT(stats.out, HasSubstr("transport-fixture traffic (active link=link-a):\n"));
    EXPECT_THAT(stats.out, HasSubstr("message tracking:\n"));
    auto link = ctl({"-C", c, "-s", "link"});
    EXPECT_EQ(link.out, "transport-fixture traffic link=link-a status=RUNNING role=ACTIVE:\n\n");
    auto rsqueue = ctl({"-C", c, "-s", "rsqueue"});
    EXPECT_THAT(rsqueue.out, HasSubstr("resent queue (len="));

    auto takeover = ctl({"-c", "-C", c});
    EXPECT_EQ(takeover.exit_code, 0) << takeover.err;
    EXPECT_THAT(takeover.out, HasSubstr("this node is PRIMARY (was BACKUP)"));
    EXPECT_EQ(ctl_json(file, "status")["role"], "PRIMARY");
    auto bulk = ctl({"-C", c, "-B"});
    EXPECT_EQ(bulk.exit_code, 0) << bulk.err;
    EXPECT_EQ(bulk.out, "bulk transfer of this node's table queued for every peer\n");
    auto backup = ctl({"-C", c, "-t"});
    EXPECT_EQ(backup.exit_code, 0) << backup.err;
    EXPECT_EQ(backup.out, "this node is BACKUP (was PRIMARY): it no longer sends its table\n");
    EXPECT_EQ(ctl_json(file, "status")["role"], "BACKUP");
    auto resync = ctl({"-C", c, "-n"});
    EXPECT_EQ(resync.exit_code, 0) << resync.err;
    EXPECT_EQ(resync.out, "bulk transfer requested from every live peer\n");

    auto kill = ctl({"-C", c, "-k"});
    EXPECT_EQ(kill.exit_code, 0) << kill.err;
    EXPECT_EQ(kill.out, "ctsyncd is stopping\n");
    auto code = daemon->wait(10s);
    ASSERT_TRUE(code.has_value()) << "ctsyncd still runs after -k";
    EXPECT_EQ(*code, 0) << daemon->err();
    EXPECT_FALSE(std::filesystem::exists(dir / "ctsyncd.sock"));
}

}  // namespace
}  // namespace ctsync::test

// SPDX-License-Identifier: GPL-2.0-or-later
// The kernel round trip, for real: flows of every kind in firewall namespace A — real TCP (DNAT+SNAT, mark,
// label), UDP, ICMP and IPv6 TCP traffic through it, an FTP control connection through the FTP helper (two
// expectations, NAT sequence adjustment), and `conntrack -I` for SCTP, DCCP, UDPLite, GRE, ICMPv6, zones,
// directional zones, marks and a generic protocol — are read by ctsyncd's source plugin, exported, imported
// into namespace B's external cache and committed there. B's kernel table must then equal A's, field by
// field, as both `conntrack -L` and ctsync's own dumps show it (timeouts within a tolerance).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
const std::string kLabPeer = CTSYNC_LAB_PEER;
constexpr std::uint32_t kTimeoutTolerance = 15;  // seconds between reading A and reading B

RunResult sh(const NetNs& ns, const std::string& script) {
    return run(ns.exec({"bash", "-c", "set -e\n" + script}), 30s);
}

void must(const RunResult& r, const std::string& what) {
    ASSERT_EQ(r.exit_code, 0) << what << "\nstdout: " << r.out << "\nstderr: " << r.err;
}

const char* kRuleset = R"(
table inet ctsync_test {
  ct helper ftp-std { type "ftp" protocol tcp; }
  chain prerouting { type filter hook prerouting priority -150; policy accept; tcp dport 21 ct helper set "ftp-std"; }
  chain forwarding { type filter hook forward priority 0; policy accept; tcp dport 8080 ct mark set 0x2a ct label set 5; }
}
table ip ctsync_nat {
  chain prerouting { type nat hook prerouting priority -100; ip daddr 203.0.113.1 tcp dport 80 dnat to 198.51.100.10:8080; }
  chain postrouting { type nat hook postrouting priority 100; ip saddr 192.0.2.0/24 oifname "a-srv" snat to 198.51.100.1; }
}
)";

// `conntrack -L -o extended` (or `-L expect`) lines with volatile fields taken out: the timeout (kept aside)
// and use counts. Keyed by the rest of the line.
std::map<std::string, std::uint32_t> normalized(const std::string& listing, bool expectations) {
    std::map<std::string, std::uint32_t> out;
    std::istringstream in(listing);
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::vector<std::string> w;
        for (std::string t; words >> t;) {
            if (t.rfind("use=", 0) != 0) {
                w.push_back(t);
            }
        }
        const std::size_t timeout_at = expectations ? 0 : 4;
        if (w.size() <= timeout_at) {
            continue;
        }
        std::uint32_t timeout = static_cast<std::uint32_t>(std::stoul(w[timeout_at]));
        w.erase(w.begin() + static_cast<std::ptrdiff_t>(timeout_at));
        std::string key;
        for (const auto& t : w) {
            key += t + " ";
        }
        out[key] = timeout;
    }
    return out;
}

void expect_same_listing(const std::string& a, const std::string& b, bool expectations) {
    auto na = normalized(a, expectations);
    auto nb = normalized(b, expectations);
    for (const auto& [key, timeout] : na) {
        auto it = nb.find(key);
        if (it == nb.end()) {
            ADD_FAILURE() << "in A, not (or not equal) in B: " << key << "\nB has:\n" << b;
            continue;
        }
        EXPECT_LE(timeout > it->second ? timeout - it->second : it->second - timeout, kTimeoutTolerance)
            << key;
    }
    for (const auto& [key, timeout] : nb) {
        EXPECT_TRUE(na.count(key)) << "in B, not in A: " << key;
    }
}

// ctsync's own view: flow JSON by identity (zone + original tuple), kernel-local fields left out.
std::map<std::string, nlohmann::json> by_identity(const nlohmann::json& dump, const char* what) {
    std::map<std::string, nlohmann::json> out;
    for (auto entry : dump.at(what)) {
        std::string key = what == std::string("flows")
                              ? entry["zone"].dump() + entry["original"].dump()
                              : entry["zone"].dump() + entry["master"].dump() + entry["expected"].dump();
        out[key] = entry;
    }
    return out;
}

void expect_same_dump(const nlohmann::json& a, const nlohmann::json& b, const char* what) {
    auto ma = by_identity(a, what);
    auto mb = by_identity(b, what);
    EXPECT_EQ(ma.size(), mb.size()) << what;
    for (auto [key, ea] : ma) {
        auto it = mb.find(key);
        if (it == mb.end()) {
            ADD_FAILURE() << what << " missing in B: " << ea.dump();
            continue;
        }
        auto eb = it->second;
        auto ta = ea["timeout"].get<std::int64_t>();
        auto tb = eb["timeout"].get<std::int64_t>();
        EXPECT_LE(std::abs(ta - tb), kTimeoutTolerance) << key;
        ea.erase("timeout");
        eb.erase("timeout");
        EXPECT_EQ(ea, eb) << "A: " << ea.dump() << "\nB: " << eb.dump();
    }
}

int count_lines(const std::string& text) {
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST(SourceCtnetlinkRoundTrip, EveryKindOfFlowFromNamespaceAEqualsItsCommitInB) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    NetNs cli("cli"), fwa("fwa"), srv("srv"), fwb("fwb");
    // Topology: cli -- fwa -- srv, fwb apart (it only receives the commit).
    must(run({"ip", "link", "add", "c0", "netns", cli.name(), "type", "veth", "peer", "a-cli", "netns",
              fwa.name()}),
         "veth cli-fwa");
    must(run({"ip", "link", "add", "a-srv", "netns", fwa.name(), "type", "veth", "peer", "s0", "netns",
              srv.name()}),
         "veth fwa-srv");
    must(sh(cli,
            "ip addr add 192.0.2.10/24 dev c0; ip -6 addr add fd00:1::10/64 dev c0 nodad; ip link set c0 up\n"
            "ip route add default via 192.0.2.1; ip -6 route add default via fd00:1::1"),
         "cli addresses");
    must(sh(srv,
            "ip addr add 198.51.100.10/24 dev s0; ip -6 addr add fd00:2::10/64 dev s0 nodad; ip link set s0 "
            "up\n"
            "ip -6 route add default via fd00:2::1"),
         "srv addresses");
    must(sh(fwa,
            "ip addr add 192.0.2.1/24 dev a-cli; ip -6 addr add fd00:1::1/64 dev a-cli nodad\n"
            "ip addr add 198.51.100.1/24 dev a-srv; ip -6 addr add fd00:2::1/64 dev a-srv nodad\n"
            "ip link set a-cli up; ip link set a-srv up\n"
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1\n"
            "sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0"),
         "fwa addresses");
    // The backup runs the primary's ruleset (NAT hooks, the FTP helper, ct labels in use).
    for (const NetNs* fw : {&fwa, &fwb}) {
        must(sh(*fw, std::string("nft -f - <<'EOF'\n") + kRuleset + "EOF"), "ruleset in " + fw->name());
    }

    // Entries that exist before ctsyncd starts reach it through the initial dump.
    must(
        sh(fwa,
           "conntrack -I -p sctp -s 192.0.2.20 -d 198.51.100.20 --sport 3868 --dport 3868 --state "
           "ESTABLISHED "
           "--orig-vtag 10 --reply-vtag 20 -t 300\n"
           "conntrack -I -p dccp -s 192.0.2.21 -d 198.51.100.21 --sport 5004 --dport 5004 --state OPEN "
           "--role CLIENT -t 300\n"
           "conntrack -I -p udplite -s 192.0.2.22 -d 198.51.100.22 --sport 1 --dport 2 -t 300\n"
           "conntrack -I -p gre -s 192.0.2.23 -d 198.51.100.23 --srckey 5 --dstkey 6 -t 300\n"
           "conntrack -I -p icmpv6 -s fd00:1::20 -d fd00:2::20 --icmpv6-type 128 --icmpv6-code 0 "
           "--icmpv6-id 9 -t 300\n"
           "conntrack -I -p udp -s 192.0.2.24 -d 198.51.100.24 --sport 7 --dport 8 --zone 5 --mark 7 -t 300\n"
           "conntrack -I -p udp -s 192.0.2.25 -d 198.51.100.25 --sport 7 --dport 8 --orig-zone 6 -t 300\n"
           "conntrack -I -p 51 -s 192.0.2.26 -d 198.51.100.26 -t 300\n"
           "conntrack -I -p tcp -s fd00:1::27 -d fd00:2::27 --sport 9 --dport 10 --state ESTABLISHED "
           "-u ASSURED,SEEN_REPLY -t 300"),
        "conntrack -I");

    auto config_a = instance_config(dir / "", 1);
    config_a["daemon"]["lock_file"] = (dir / "a.lock").string();
    config_a["daemon"]["control_socket"] = (dir / "a.sock").string();
    config_a["source"] = {{"plugin", "source-ctnetlink"}};
    auto file_a = write_config(dir.path(), config_a, "a.json");
    auto config_b = config_a;
    config_b["node"]["id"] = 2;
    config_b["daemon"]["lock_file"] = (dir / "b.lock").string();
    config_b["daemon"]["control_socket"] = (dir / "b.sock").string();
    auto file_b = write_config(dir.path(), config_b, "b.json");

    Process daemon_a(fwa.exec({kCtsyncd, "-C", file_a.string()}));
    Process daemon_b(fwb.exec({kCtsyncd, "-C", file_b.string()}));
    ASSERT_TRUE(wait_until(
        [&] { return !ctl_json(file_a, "status").is_null() && !ctl_json(file_b, "status").is_null(); }, 10s,
        50ms))
        << daemon_a.err() << daemon_b.err();

    // Real traffic while ctsyncd runs reaches it through events.
    Process web(srv.exec({kLabPeer, "tcp-server", "8080"}));
    Process ftp(srv.exec({kLabPeer, "tcp-server", "21"}));
    Process web6(srv.exec({kLabPeer, "tcp-server", "8081"}));
    Process dns(srv.exec({kLabPeer, "udp-server", "5353"}));
    ASSERT_TRUE(
        wait_until([&] { return count_lines(web.out() + ftp.out() + web6.out() + dns.out()) == 4; }, 5s));
    Process tcp_client(
        cli.exec({kLabPeer, "tcp-client", "203.0.113.1", "80", "--send", "hello", "--hold-ms", "120000"}));
    Process ftp_client(cli.exec({kLabPeer, "tcp-client", "198.51.100.10", "21", "--send", "PASV", "--send",
                                 "PORT 192,0,2,10,78,32", "--hold-ms", "120000"}));
    Process tcp6_client(
        cli.exec({kLabPeer, "tcp-client", "fd00:2::10", "8081", "--send", "hi", "--hold-ms", "120000"}));
    must(run(cli.exec({kLabPeer, "udp-client", "198.51.100.10", "5353"})), "udp through the firewall");
    must(run(cli.exec({"ping", "-c", "1", "-W", "2", "198.51.100.10"})), "ping through the firewall");
    ASSERT_TRUE(wait_until(
        [&] {
            return count_lines(tcp_client.out()) == 1 && count_lines(ftp_client.out()) == 2 &&
                   count_lines(tcp6_client.out()) == 1;
        },
        10s))
        << tcp_client.err() << ftp_client.err() << tcp6_client.err();

    // Until the peers' delayed ACKs arrive, conntrack keeps real TCP flows on the 300 s "unacknowledged"
    // timeout; a timer change raises no event, so let the real flows settle on their established timeout.
    std::string listing_a;
    ASSERT_TRUE(wait_until(
        [&] {
            listing_a = sh(fwa, "conntrack -L -o extended 2>/dev/null").out;
            auto settled = normalized(listing_a, false);
            return std::all_of(settled.begin(), settled.end(), [](const auto& kv) {
                bool real_tcp = kv.first.find(" ESTABLISHED src=192.0.2.10 ") != std::string::npos ||
                                kv.first.find(" ESTABLISHED src=fd00:1::10 ") != std::string::npos;
                return !real_tcp || kv.second > 1000;
            });
        },
        5s))
        << listing_a;
    // A holds every kind; its ctsyncd has read them all.
    std::string expect_a = sh(fwa, "conntrack -L expect 2>/dev/null").out;
    ASSERT_GE(count_lines(listing_a), 14) << listing_a;
    // The FTP helper keeps one expectation per master: PORT (mangled by NAT, hence a sequence adjustment)
    // replaced the one PASV made.
    ASSERT_EQ(count_lines(expect_a), 1) << "the FTP helper made no expectation:\n" << expect_a;
    EXPECT_THAT(expect_a, ::testing::HasSubstr("dst=198.51.100.1 sport=0 dport=20000"));
    EXPECT_THAT(listing_a, ::testing::HasSubstr("helper=ftp"));
    EXPECT_THAT(listing_a, ::testing::HasSubstr("mark=42"));
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = ctl_json(file_a, "status");
            return !s.is_null() && s["tables"]["internal_flows"] == count_lines(listing_a) &&
                   s["tables"]["internal_expectations"] == count_lines(expect_a);
        },
        10s))
        << ctl_json(file_a, "status").dump();

    // Timer refreshes raise no kernel event, so the cache's timeouts are as of the last event or dump: take a
    // fresh dump (resync) before exporting, as a commit right after a bulk transfer would have.
    auto dumps_done = [&] {
        for (const auto& m : ctl_json(file_a, "stats")) {
            if (m["name"] == "source-ctnetlink.dumps") {
                return m["value"].get<int>();
            }
        }
        return -1;
    };
    const int before = dumps_done();
    must(run({kCtsyncctl, "-C", file_a.string(), "resync"}), "resync A");
    ASSERT_TRUE(wait_until(
        [&] { return dumps_done() > before && !ctl_json(file_a, "status")["tables"]["dumping"].get<bool>(); },
        10s));
    listing_a = sh(fwa, "conntrack -L -o extended 2>/dev/null").out;

    // Export from A, import into B's external cache, commit into B's kernel.
    auto dump_a = ctl_json(file_a, "dump");
    ASSERT_FALSE(dump_a.is_null());
    write_file(dir / "flows.json", dump_a.dump());
    must(run({kCtsyncctl, "-C", file_b.string(), "import", (dir / "flows.json").string()}), "import into B");
    auto commit = run({kCtsyncctl, "-C", file_b.string(), "commit", "--json"});
    must(commit, "commit into B");
    auto report = nlohmann::json::parse(commit.out);
    EXPECT_EQ(report["failed"], 0) << report.dump(2);

    // B's kernel now equals A's, as conntrack sees them ...
    std::string listing_b = sh(fwb, "conntrack -L -o extended 2>/dev/null").out;
    if (const char* keep = std::getenv("CTSYNC_TEST_KEEP"); keep != nullptr) {
        write_file(std::string(keep) + "/listing_a", listing_a);
        write_file(std::string(keep) + "/listing_b", listing_b);
        write_file(std::string(keep) + "/dump_a", dump_a.dump(1));
    }
    std::string expect_b = sh(fwb, "conntrack -L expect 2>/dev/null").out;
    expect_same_listing(listing_a, listing_b, false);
    expect_same_listing(expect_a, expect_b, true);
    // ... and as ctsync reads them back (labels, helper, sequence adjustment, TCP flags, vtags included).
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = ctl_json(file_b, "status");
            return !s.is_null() && s["tables"]["internal_flows"] == count_lines(listing_a) &&
                   s["tables"]["internal_expectations"] == count_lines(expect_a);
        },
        10s));
    auto dump_b = ctl_json(file_b, "dump");
    expect_same_dump(dump_a, dump_b, "flows");
    expect_same_dump(dump_a, dump_b, "expectations");
}

}  // namespace
}  // namespace ctsync::test

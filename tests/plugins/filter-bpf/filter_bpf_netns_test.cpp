// SPDX-License-Identifier: GPL-2.0-or-later
// filter-bpf against the real kernel, in private network namespaces:
//  - the property over the kernel's own bytes: random flows (both families, TCP, UDP, SCTP, ICMP, GRE,
//    UDP-Lite, NATed or not, zones of both and of one direction, marks) are created, updated and deleted
//    through ctnetlink; every NEW, UPDATE and DESTROY event the kernel sends is kept as bytes and decoded as
//    source-ctnetlink decodes it; over thousands of random expressions the compiled program, run by the
//    interpreter over those bytes, agrees with the in-process verdict on the decoded flow;
//  - the programs on real sockets: each attached to a socket of its own, the kernel delivers exactly the
//    events the interpreter accepts, byte for byte, in order;
//  - a daemon: the events the kernel-side program rejects never reach ctsyncd (the source's receive
//    counters), the same expression in process receives them all and drops them there, and both leave the
//    same flows in the internal cache; `ctsyncctl filters` reports what runs where.
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/filter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <sched.h>

#include <map>
#include <memory>
#include <thread>

#include "bpf.hpp"
#include "expr.hpp"
#include "flow_codec.hpp"
#include "property.hpp"
#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace filter_bpf::test {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

struct MnlDeleter {
    void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using EventSocket = std::unique_ptr<mnl_socket, MnlDeleter>;

// A socket subscribed to every conntrack event group, with a large buffer: nothing is lost in a test burst.
EventSocket event_socket() {
    EventSocket s(mnl_socket_open(NETLINK_NETFILTER));
    if (!s) {
        return s;
    }
    int size = 16 << 20;
    setsockopt(mnl_socket_get_fd(s.get()), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    if (mnl_socket_bind(s.get(),
                        NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY,
                        MNL_SOCKET_AUTOPID) != 0) {
        s.reset();
    }
    return s;
}

// Every message queued on `s` until it stays quiet for 200 ms (bounded: 10 s).
std::vector<Bytes> drain(mnl_socket* s) {
    std::vector<Bytes> out;
    std::vector<std::uint8_t> buf(1 << 16);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{mnl_socket_get_fd(s), POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) {
            break;
        }
        const ssize_t n = recv(mnl_socket_get_fd(s), buf.data(), buf.size(), 0);
        if (n <= 0) {
            break;
        }
        auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
        int len = static_cast<int>(n);
        while (mnl_nlmsg_ok(nlh, len)) {
            const auto* p8 = reinterpret_cast<const std::uint8_t*>(nlh);
            out.emplace_back(p8, p8 + nlh->nlmsg_len);
            nlh = mnl_nlmsg_next(nlh, &len);
        }
    }
    return out;
}

// A flow the kernel accepts on create: NAT as bindings (the kernel derives the reply), a valid state.
sdk::FlowState kernel_flow(Random& r, long i) {
    sdk::FlowState f;
    const bool six = r.chance(35);
    f.original.family = six ? sdk::Family::kIpv6 : sdk::Family::kIpv4;
    const std::vector<std::uint8_t> protos = {
        l4::kTcp, l4::kTcp, l4::kUdp, l4::kSctp, l4::kGre, l4::kUdplite, six ? l4::kIcmpv6 : l4::kIcmp};
    f.original.protocol = r.pick(protos);
    const auto& pool = six ? kV6 : kV4;
    f.original.src = address_of(r.pick(pool));
    f.original.dst = address_of(r.pick(pool));
    // Unique per flow: the source port (or ICMP id, GRE key) carries the index.
    f.original.src_port = static_cast<std::uint16_t>(2000 + i);
    f.original.dst_port = r.pick(kPorts);
    if (f.original.protocol == l4::kIcmp || f.original.protocol == l4::kIcmpv6) {
        f.original.dst_port = 0;
        f.original.icmp_type = f.original.protocol == l4::kIcmp ? 8 : 128;
    }
    f.reply = ctnetlink::invert(f.original);
    f.status = (1u << 3) | (r.chance(60) ? (1u << 1) | (1u << 2) : 0);
    if (f.original.protocol == l4::kTcp || f.original.protocol == l4::kUdp) {
        if (r.chance(35)) {
            f.snat.present = true;
            f.snat.address = address_of(r.pick(pool));
            f.snat.port = r.chance(50) ? static_cast<std::uint16_t>(30000 + i) : 0;
        }
        if (r.chance(20)) {
            f.dnat.present = true;
            f.dnat.address = address_of(r.pick(pool));
            f.dnat.port = r.chance(50) ? r.pick(kPorts) : 0;
        }
    }
    if (r.chance(35)) {
        f.zone.id = static_cast<std::uint16_t>(1 + r.below(3));
        f.zone.directions = r.chance(60) ? sdk::Zone::kDirBoth
                                         : (r.chance(50) ? sdk::Zone::kDirOriginal : sdk::Zone::kDirReply);
    }
    f.mark = r.chance(50) ? 0 : static_cast<std::uint32_t>(1 + r.below(3));
    if (f.original.protocol == l4::kTcp) {
        f.tcp.state = static_cast<std::uint8_t>(1 + r.below(8));
    } else if (f.original.protocol == l4::kSctp) {
        f.sctp.state = static_cast<std::uint8_t>(1 + r.below(7));
        f.sctp.vtag_original = 0x1000 + static_cast<std::uint32_t>(i);
        f.sctp.vtag_reply = 0x2000 + static_cast<std::uint32_t>(i);
    }
    f.timeout = 300;
    return f;
}

struct NfctDeleter {
    void operator()(nfct_handle* h) const { nfct_close(h); }
};

// Creates `count` random flows, then updates a third (a new mark) and deletes a third. Returns how many
// creates the kernel took.
int churn(Random& r, long first, int count) {
    std::unique_ptr<nfct_handle, NfctDeleter> h(nfct_open(CONNTRACK, 0));
    if (!h) {
        return 0;
    }
    int created = 0;
    std::vector<sdk::FlowState> made;
    for (long i = first; i < first + count; ++i) {
        sdk::FlowState f = kernel_flow(r, i);
        auto ct = ctnetlink::encode_flow(f, ctnetlink::Purpose::kCreate);
        if (nfct_query(h.get(), NFCT_Q_CREATE, ct.get()) == 0) {
            ++created;
            made.push_back(f);
        }
    }
    for (std::size_t i = 0; i < made.size(); ++i) {
        if (i % 3 == 1) {
            made[i].mark = 0x77;
            auto ct = ctnetlink::encode_flow(made[i], ctnetlink::Purpose::kUpdate);
            nfct_query(h.get(), NFCT_Q_UPDATE, ct.get());
        } else if (i % 3 == 2) {
            auto ct = ctnetlink::encode_flow(made[i], ctnetlink::Purpose::kDelete);
            nfct_query(h.get(), NFCT_Q_DESTROY, ct.get());
        }
    }
    return created;
}

bool decode(const Bytes& m, sdk::FlowState& out) {
    auto ct = ctnetlink::new_conntrack();
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(m.data());
    if (nfct_nlmsg_parse(nlh, ct.get()) < 0) {
        return false;
    }
    out = {};
    return ctnetlink::decode_flow(*ct, out);
}

TEST(FilterBpfKernel, TheProgramAgreesWithTheProcessOverTheKernelsOwnEventBytes) {
    std::vector<Bytes> messages;
    int created = 0;
    ASSERT_TRUE(ctsync::test::in_private_netns([&] {
        auto s = event_socket();
        ASSERT_TRUE(s) << "cannot subscribe to conntrack events: " << std::strerror(errno);
        Random r(7);
        created = churn(r, 0, 600);
        messages = drain(s.get());
    })) << "this test needs root (unshare CLONE_NEWNET)";
    ASSERT_GE(created, 450) << "the kernel refused most creates";
    std::vector<sdk::FlowState> flows;
    std::vector<Bytes> kept;
    std::map<int, int> kinds;
    for (const auto& m : messages) {
        sdk::FlowState f;
        ASSERT_TRUE(decode(m, f));
        flows.push_back(f);
        kept.push_back(m);
        kinds[reinterpret_cast<const nlmsghdr*>(m.data())->nlmsg_type & 0xff]++;
    }
    // NEW for every create; UPDATE and DESTROY events too, with their smaller attribute sets.
    EXPECT_GE(kinds[IPCTNL_MSG_CT_NEW], created);
    EXPECT_GE(kinds[IPCTNL_MSG_CT_DELETE], created / 4);
    ASSERT_GE(flows.size(), static_cast<std::size_t>(created + created / 2));

    Random r(20261207);
    Tally tally;
    std::size_t exact = 0;
    for (int e = 0; e < 3000; ++e) {
        const std::string text = random_expression(r, 3);
        ParseError error;
        auto root = parse(text, error);
        ASSERT_TRUE(root) << text;
        std::string why;
        auto program = compile(**root, why);
        if (!program) {
            continue;
        }
        exact += kernel_exact(**root);
        for (std::size_t i = 0; i < kept.size(); ++i) {
            ASSERT_TRUE(verdicts_agree(**root, *program, kept[i], flows[i], tally))
                << "expression: " << text << "\nmessage #" << i;
        }
    }
    EXPECT_GT(tally.dropped_in_kernel, tally.verdicts / 10);
    EXPECT_GT(exact, 500u);
    std::printf("kernel messages %zu (created %d), verdicts %zu, dropped %zu\n", kept.size(), created,
                tally.verdicts, tally.dropped_in_kernel);
}

TEST(FilterBpfKernel, OnARealSocketTheKernelDeliversExactlyWhatTheInterpreterAccepts) {
    constexpr int kPrograms = 40;
    std::vector<std::string> texts;
    std::vector<Program> programs;
    Random r(99);
    while (static_cast<int>(programs.size()) < kPrograms) {
        const std::string text = random_expression(r, 3);
        ParseError error;
        auto root = parse(text, error);
        ASSERT_TRUE(root);
        std::string why;
        if (auto p = compile(**root, why)) {
            texts.push_back(text);
            programs.push_back(std::move(*p));
        }
    }
    std::vector<Bytes> all;
    std::vector<std::vector<Bytes>> got(kPrograms);
    ASSERT_TRUE(ctsync::test::in_private_netns([&] {
        auto plain = event_socket();
        ASSERT_TRUE(plain);
        std::vector<EventSocket> filtered;
        for (const auto& p : programs) {
            auto s = event_socket();
            ASSERT_TRUE(s);
            sock_fprog fprog{
                static_cast<unsigned short>(p.size()),
                reinterpret_cast<sock_filter*>(const_cast<ctsync::sdk::BpfInstruction*>(p.data()))};
            ASSERT_EQ(
                setsockopt(mnl_socket_get_fd(s.get()), SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)),
                0)
                << std::strerror(errno);
            filtered.push_back(std::move(s));
        }
        Random flows(11);
        ASSERT_GE(churn(flows, 0, 300), 200);
        all = drain(plain.get());
        for (int i = 0; i < kPrograms; ++i) {
            got[static_cast<std::size_t>(i)] = drain(filtered[static_cast<std::size_t>(i)].get());
        }
    }));
    ASSERT_GE(all.size(), 300u);
    std::size_t kernel_dropped = 0;
    for (int i = 0; i < kPrograms; ++i) {
        std::vector<Bytes> expected;
        for (const auto& m : all) {
            if (run(programs[static_cast<std::size_t>(i)], m) != kDrop) {
                expected.push_back(m);
            }
        }
        kernel_dropped += all.size() - got[static_cast<std::size_t>(i)].size();
        EXPECT_EQ(got[static_cast<std::size_t>(i)].size(), expected.size())
            << texts[static_cast<std::size_t>(i)];
        EXPECT_TRUE(got[static_cast<std::size_t>(i)] == expected) << texts[static_cast<std::size_t>(i)];
    }
    EXPECT_GT(kernel_dropped, all.size() * kPrograms / 10);  // the programs do drop, often
}

// ---- a daemon ----

struct DaemonRun {
    std::int64_t events_new = 0;
    std::int64_t seen = 0;
    std::int64_t dropped_in_process = 0;
    std::int64_t dropped_in_kernel = 0;
    std::int64_t internal_flows = 0;
    nlohmann::json filters;
    nlohmann::json stats;
};

DaemonRun daemon_run(const std::string& placement, long entries, nlohmann::json filters = nullptr) {
    using namespace ctsync::test;
    DaemonRun out;
    TempDir dir;
    NetNs ns("fbpf");
    auto config = instance_config(dir.path(), 1);
    config["source"] = {{"plugin", "source-ctnetlink"}, {"config", {{"expectations", false}}}};
    // 1 in 10 sources (ct-inject --sources 10 spreads entries over 192.0.2.1-10).
    config["filters"] =
        filters.is_null()
            ? nlohmann::json{{{"plugin", "filter-bpf"},
                              {"name", "one-source"},
                              {"config",
                               {{"expression", "orig src host 192.0.2.1"}, {"placement", placement}}}}}
            : filters;
    auto file = write_config(dir.path(), config);
    Process daemon(ns.exec({kCtsyncd, "-C", file.string()}));
    EXPECT_TRUE(wait_until(
        [&] {
            auto s = ctl_json(file, "status");
            return !s.is_null() && s["tables"]["internal_synced"].get<bool>();
        },
        10s))
        << daemon.err();
    auto inject = ctsync::test::run(
        ns.exec({CTSYNC_CT_INJECT, "--count", std::to_string(entries), "--sources", "10"}), 30s);
    EXPECT_EQ(inject.exit_code, 0) << inject.err;
    EXPECT_TRUE(wait_until(
        [&] {
            auto s = ctl_json(file, "stats");
            return metric(s, "internal.flows") >= entries / 10;
        },
        20s));
    std::this_thread::sleep_for(300ms);  // anything still queued arrives
    auto stats = ctl_json(file, "stats");
    out.events_new = metric(stats, "source-ctnetlink.events_new");
    out.seen = metric(stats, "one-source.seen");
    out.dropped_in_process = metric(stats, "one-source.dropped_in_process");
    out.internal_flows = metric(stats, "internal.flows");
    out.filters = ctl_json(file, "filters");  // reads the kernel's drop counts, as the 1 s timer does
    out.stats = ctl_json(file, "stats");
    out.dropped_in_kernel = metric(out.stats, "one-source.dropped_in_kernel");
    EXPECT_EQ(daemon.terminate(10s).value_or(-1), 0);
    return out;
}

TEST(FilterBpfKernel, EventsTheKernelRejectsNeverReachTheDaemon) {
    ASSERT_TRUE(ctsync::test::can_create_netns()) << "this test needs root (network namespaces)";
    constexpr long kEntries = 2000;
    const DaemonRun kernel = daemon_run("auto", kEntries);
    const DaemonRun process = daemon_run("process", kEntries);
    // Both keep exactly the 1 in 10 flows from 192.0.2.1.
    EXPECT_EQ(kernel.internal_flows, kEntries / 10);
    EXPECT_EQ(process.internal_flows, kEntries / 10);
    // In the kernel: only those events were read at all; in process: every event, nine in ten dropped here.
    EXPECT_EQ(kernel.events_new, kEntries / 10);
    EXPECT_EQ(kernel.seen, kEntries / 10);
    EXPECT_EQ(kernel.dropped_in_process, 0);
    EXPECT_EQ(kernel.dropped_in_kernel, kEntries - kEntries / 10);  // counted by the kernel (witness)
    EXPECT_EQ(process.events_new, kEntries);
    EXPECT_EQ(process.seen, kEntries);
    EXPECT_EQ(process.dropped_in_process, kEntries - kEntries / 10);
    EXPECT_EQ(process.dropped_in_kernel, -1);  // no kernel part: no such counter
    // What `ctsyncctl filters` reports.
    ASSERT_TRUE(kernel.filters.is_object()) << kernel.filters;
    EXPECT_TRUE(kernel.filters["kernel_program"]["attached"].get<bool>());
    const auto& f = kernel.filters["filters"][0];
    EXPECT_EQ(f["instance"], "one-source");
    EXPECT_EQ(f["kernel"], "attached");
    EXPECT_EQ(f["dropped_in_kernel"], kEntries - kEntries / 10);
    EXPECT_TRUE(kernel.filters["kernel_program"]["counting_drops"].get<bool>());
    EXPECT_TRUE(f["describe"]["kernel"]["exact"].get<bool>());
    EXPECT_EQ(f["describe"]["expression"], "orig src host 192.0.2.1");
    ASSERT_TRUE(process.filters.is_object());
    EXPECT_EQ(process.filters["filters"][0]["kernel"], "none");
    EXPECT_EQ(process.filters["kernel_program"]["instructions"], 0);
}

TEST(FilterBpfKernel, ChainedFiltersDropInTheKernelAndEachCountsItsOwn) {
    using ctsync::test::metric;
    ASSERT_TRUE(ctsync::test::can_create_netns()) << "this test needs root (network namespaces)";
    constexpr long kEntries = 2000;
    // The first keeps two sources in ten, the second one of those: 1600 dropped by the first, 200 by the
    // second, 200 kept; a third filter decides on the mark in process only (every flow has mark 0).
    const nlohmann::json filters = {
        {{"plugin", "filter-bpf"},
         {"name", "two"},
         {"config", {{"expression", "src net 192.0.2.0/31 or src host 192.0.2.2"}}}},
        {{"plugin", "filter-bpf"},
         {"name", "one"},
         {"config", {{"expression", "not orig src host 192.0.2.2"}}}},
        {{"plugin", "filter-bpf"}, {"name", "mark"}, {"config", {{"expression", "mark 0"}}}}};
    const DaemonRun r = daemon_run("auto", kEntries, filters);
    EXPECT_EQ(r.internal_flows, kEntries / 10);
    EXPECT_EQ(metric(r.stats, "source-ctnetlink.events_new"), kEntries / 10);
    EXPECT_EQ(metric(r.stats, "two.dropped_in_kernel"), kEntries - 2 * kEntries / 10);
    EXPECT_EQ(metric(r.stats, "one.dropped_in_kernel"), kEntries / 10);
    EXPECT_EQ(metric(r.stats, "mark.dropped_in_kernel"), 0);  // its program lets every flow through
    EXPECT_EQ(metric(r.stats, "mark.seen"), kEntries / 10);
    EXPECT_EQ(metric(r.stats, "mark.accepted"), kEntries / 10);
    ASSERT_TRUE(r.filters.is_object());
    EXPECT_EQ(r.filters["filters"][0]["kernel"], "attached");
    EXPECT_EQ(r.filters["filters"][1]["kernel"], "attached");
    EXPECT_EQ(r.filters["filters"][2]["kernel"], "attached");  // a program that lets every flow through
    EXPECT_FALSE(r.filters["filters"][2]["describe"]["kernel"]["exact"].get<bool>());
}

}  // namespace
}  // namespace filter_bpf::test

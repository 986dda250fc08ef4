// SPDX-License-Identifier: GPL-2.0-or-later
// The event socket's kernel-side program (in a private network namespace, a thread's own):
//  - the hook filter-bpf will use: a classic BPF program decides which events of other writers reach ctsync;
//  - the source's own writes (ADR-038): the kernel's echoes of them never reach the process (a prologue
//    drops them), the source reports each applied write itself, and a DESTROY read while a write is
//    undelivered keeps the write's echo back (the entry may be gone).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/filter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sched.h>

#include <boost/asio/io_context.hpp>
#include <ctsync/sdk/testing/mocks.hpp>
#include <map>
#include <thread>

#include "ctnetlink_source.hpp"
#include "flow_codec.hpp"
#include "tests/support/netns.hpp"

namespace ctnetlink {
namespace {

using namespace ctsync::sdk;
using ::testing::_;
using ::testing::NiceMock;

FlowState udp_flow(std::uint16_t sport) {
    FlowState f;
    f.original.family = Family::kIpv4;
    f.original.protocol = l4::kUdp;
    f.original.src.bytes = {192, 0, 2, 1};
    f.original.dst.bytes = {198, 51, 100, 1};
    f.original.src_port = sport;
    f.original.dst_port = 53;
    f.timeout = 60;
    return f;
}

struct Counts {
    int events = 0;
    int dumped = 0;
};

void run_case(const std::vector<BpfInstruction>& program, Counts& counts, std::string& attach_error,
              bool& attached) {
    boost::asio::io_context io;
    NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    PluginContext context{io.get_executor(), &logger, &metrics, 1, "src"};
    SourceOptions options;
    options.expectations = false;
    options.resync_interval = std::chrono::seconds(0);
    options.sysctl_path = "/proc/sys/net/netfilter/nf_conntrack_events";
    CtnetlinkSource source(context, options);
    NiceMock<ctsync::testkit::MockFlowSink> sink;
    ON_CALL(sink, on_flow(_, _)).WillByDefault([&](EventKind kind, const FlowState&) {
        (kind == EventKind::kDump ? counts.dumped : counts.events) += 1;
    });
    std::string error;
    ASSERT_TRUE(source.start(sink, error)) << error;
    io.run_for(std::chrono::milliseconds(200));  // the initial dump
    attached = source.attach_event_filter(program, attach_error);
    const FlowState flows[] = {udp_flow(1000), udp_flow(1001), udp_flow(1002)};
    std::vector<WriteOp> ops;
    for (const auto& f : flows) {
        ops.push_back({WriteOp::Kind::kUpsert, &f, nullptr});
    }
    // Another process's writes (a second source, never started: its own socket and port id).
    CtnetlinkSource other(context, options);
    WriteReport report = other.write(ops);
    EXPECT_EQ(report.applied, 3u);
    EXPECT_EQ(report.failed, 0u);
    io.run_for(std::chrono::milliseconds(300));
    source.stop();
}

TEST(SourceCtnetlinkEventFilter, KernelProgramDecidesWhichEventsArrive) {
    Counts accept_all, drop_all;
    std::string error;
    bool attached = false;
    const std::vector<BpfInstruction> accept = {{BPF_RET | BPF_K, 0, 0, 0xffffffff}};
    const std::vector<BpfInstruction> drop = {{BPF_RET | BPF_K, 0, 0, 0}};
    ASSERT_TRUE(ctsync::test::in_private_netns([&] { run_case(accept, accept_all, error, attached); }));
    EXPECT_TRUE(attached) << error;
    EXPECT_EQ(accept_all.events, 3);
    ASSERT_TRUE(ctsync::test::in_private_netns([&] { run_case(drop, drop_all, error, attached); }));
    EXPECT_TRUE(attached) << error;
    EXPECT_EQ(drop_all.events, 0);  // the kernel filtered them out
}

TEST(SourceCtnetlinkEventFilter, InvalidProgramIsRefusedAndTheOldOneStays) {
    Counts counts;
    std::string error;
    bool attached = true;
    // A jump past the end of the program: the kernel's verifier refuses it.
    const std::vector<BpfInstruction> invalid = {{BPF_JMP | BPF_JA, 0, 0, 5}, {BPF_RET | BPF_K, 0, 0, 0}};
    ASSERT_TRUE(ctsync::test::in_private_netns([&] { run_case(invalid, counts, error, attached); }));
    EXPECT_FALSE(attached);
    EXPECT_EQ(error, "the kernel refused the event filter: Invalid argument");
    EXPECT_EQ(counts.events, 3);  // no filter: everything arrives
}

// What a sink holds after the events it was told, and how many of each kind.
struct Table {
    std::map<std::uint16_t, FlowState> flows;  // by source port
    int new_events = 0;
    int destroy_events = 0;
    void apply(EventKind kind, const FlowState& flow) {
        if (kind == EventKind::kDestroy) {
            ++destroy_events;
            flows.erase(flow.original.src_port);
        } else {
            new_events += kind == EventKind::kNew ? 1 : 0;
            flows[flow.original.src_port] = flow;
        }
    }
};

struct OwnWriteRig {
    boost::asio::io_context io;
    NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    PluginContext context{io.get_executor(), &logger, &metrics, 1, "src"};
    SourceOptions options;
    NiceMock<ctsync::testkit::MockFlowSink> sink;
    Table table;
    std::unique_ptr<CtnetlinkSource> source;

    void start() {
        options.expectations = false;
        options.resync_interval = std::chrono::seconds(0);
        options.event_batch = std::chrono::microseconds(0);
        source = std::make_unique<CtnetlinkSource>(context, options);
        ON_CALL(sink, on_flow(_, _)).WillByDefault([this](EventKind kind, const FlowState& flow) {
            if (kind != EventKind::kDump) {
                table.apply(kind, flow);
            }
        });
        std::string error;
        ASSERT_TRUE(source->start(sink, error)) << error;
        io.run_for(std::chrono::milliseconds(200));  // the initial dump
    }
    WriteReport write(const std::vector<FlowState>& flows, WriteOp::Kind kind) {
        std::vector<WriteOp> ops;
        for (const auto& f : flows) {
            ops.push_back({kind, &f, nullptr});
        }
        return source->write(ops);
    }
};

TEST(SourceCtnetlinkOwnWrites, EchoesStayInTheKernelAndEachAppliedWriteIsReportedOnce) {
    ASSERT_TRUE(ctsync::test::in_private_netns([] {
        OwnWriteRig rig;
        rig.start();
        std::vector<FlowState> flows;
        for (std::uint16_t port = 2000; port < 2050; ++port) {
            flows.push_back(udp_flow(port));
        }
        EXPECT_EQ(rig.write(flows, WriteOp::Kind::kUpsert).applied, 50u);
        rig.io.run_for(std::chrono::milliseconds(300));
        EXPECT_EQ(rig.table.flows.size(), 50u);
        EXPECT_EQ(rig.table.new_events, 50);
        EXPECT_EQ(rig.metrics.counter_value("own_writes_reported"), 50);
        EXPECT_EQ(rig.metrics.counter_value("events_new"), 0);       // not one echo read...
        EXPECT_EQ(rig.metrics.counter_value("own_events_read"), 0);  // ...not even to skip it

        // An update of what exists is reported as an update; a delete as a destroy.
        flows[0].mark = 7;
        EXPECT_EQ(rig.write({flows[0]}, WriteOp::Kind::kUpsert).applied, 1u);
        EXPECT_EQ(rig.write({flows[1]}, WriteOp::Kind::kDelete).applied, 1u);
        rig.io.run_for(std::chrono::milliseconds(300));
        EXPECT_EQ(rig.table.flows.size(), 49u);
        EXPECT_EQ(rig.table.flows[2000].mark, 7u);
        EXPECT_EQ(rig.table.new_events, 50);
        EXPECT_EQ(rig.table.destroy_events, 1);
        EXPECT_EQ(rig.metrics.counter_value("events_update"), 0);
        EXPECT_EQ(rig.metrics.counter_value("events_destroy"), 0);

        // Another writer's changes still arrive as the kernel's events.
        CtnetlinkSource other(rig.context, rig.options);
        const FlowState outsider = udp_flow(3000);
        const WriteOp op{WriteOp::Kind::kUpsert, &outsider, nullptr};
        EXPECT_EQ(other.write({&op, 1}).applied, 1u);
        rig.io.run_for(std::chrono::milliseconds(300));
        EXPECT_EQ(rig.metrics.counter_value("events_new"), 1);
        EXPECT_EQ(rig.table.flows.count(3000), 1u);
        rig.source->stop();
    }));
}

TEST(SourceCtnetlinkOwnWrites, ParallelWritesAreReportedAndTheirEchoesFilteredToo) {
    ASSERT_TRUE(ctsync::test::in_private_netns([] {
        OwnWriteRig rig;
        rig.options.write_threads = 2;
        rig.start();
        std::vector<FlowState> flows;
        for (std::uint32_t i = 0; i < 6000; ++i) {  // above the parallel threshold (4096)
            FlowState f = udp_flow(static_cast<std::uint16_t>(1024 + i % 60000));
            f.original.src.bytes[3] = static_cast<std::uint8_t>(1 + i / 60000);
            flows.push_back(f);
        }
        EXPECT_EQ(rig.write(flows, WriteOp::Kind::kUpsert).applied, 6000u);
        rig.io.run_for(std::chrono::milliseconds(500));
        EXPECT_EQ(rig.metrics.counter_value("own_writes_reported"), 6000);
        EXPECT_EQ(rig.metrics.counter_value("events_new"), 0);
        EXPECT_EQ(rig.metrics.counter_value("own_events_read"), 0);
        EXPECT_EQ(rig.table.flows.size(), 6000u);
        rig.source->stop();
    }));
}

// A DESTROY from the kernel (port id 0), as the event socket would carry it.
std::vector<char> destroy_message(const FlowState& flow) {
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    nlh->nlmsg_pid = 0;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = AF_INET;
    nfg->version = NFNETLINK_V0;
    ConntrackPtr ct = encode_flow(flow, Purpose::kDelete);
    nfct_nlmsg_build(nlh, ct.get());
    buffer.resize(nlh->nlmsg_len);
    return buffer;
}

TEST(SourceCtnetlinkOwnWrites, ADestroyReadBeforeTheWriteIsReportedKeepsItsEchoBack) {
    ASSERT_TRUE(ctsync::test::in_private_netns([] {
        OwnWriteRig rig;
        rig.start();
        const FlowState gone = udp_flow(4000);
        const FlowState kept = udp_flow(4001);
        EXPECT_EQ(rig.write({gone, kept}, WriteOp::Kind::kUpsert).applied, 2u);
        // The kernel destroys `gone` (a timeout) and the reader sees it before the write's report runs.
        auto message = destroy_message(gone);
        rig.source->on_event_message(reinterpret_cast<const nlmsghdr*>(message.data()));
        rig.io.run_for(std::chrono::milliseconds(300));
        EXPECT_EQ(rig.table.flows.count(4000), 0u) << "the cache would hold an entry the kernel lacks";
        EXPECT_EQ(rig.table.flows.count(4001), 1u);
        EXPECT_EQ(rig.metrics.counter_value("own_writes_withheld"), 1);

        // Once every write is reported, a DESTROY no longer affects later writes.
        EXPECT_EQ(rig.write({gone}, WriteOp::Kind::kUpsert).applied, 1u);
        rig.io.run_for(std::chrono::milliseconds(300));
        EXPECT_EQ(rig.table.flows.count(4000), 1u);
        EXPECT_EQ(rig.metrics.counter_value("own_writes_withheld"), 1);
        rig.source->stop();
    }));
}

}  // namespace
}  // namespace ctnetlink

// SPDX-License-Identifier: GPL-2.0-or-later
// The hook filter-bpf will use: a classic BPF program attached to the event socket decides, in the kernel,
// which events reach ctsync. Driven in process, in a private network namespace (a thread's own).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <sched.h>

#include <boost/asio/io_context.hpp>
#include <ctsync/sdk/testing/mocks.hpp>
#include <thread>

#include "ctnetlink_source.hpp"

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

// Runs `body` on a thread of its own network namespace; returns false when the namespace could not be made.
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
    WriteReport report = source.write(ops);
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
    ASSERT_TRUE(in_private_netns([&] { run_case(accept, accept_all, error, attached); }));
    EXPECT_TRUE(attached) << error;
    EXPECT_EQ(accept_all.events, 3);
    ASSERT_TRUE(in_private_netns([&] { run_case(drop, drop_all, error, attached); }));
    EXPECT_TRUE(attached) << error;
    EXPECT_EQ(drop_all.events, 0);  // the kernel filtered them out
}

TEST(SourceCtnetlinkEventFilter, InvalidProgramIsRefusedAndTheOldOneStays) {
    Counts counts;
    std::string error;
    bool attached = true;
    // A jump past the end of the program: the kernel's verifier refuses it.
    const std::vector<BpfInstruction> invalid = {{BPF_JMP | BPF_JA, 0, 0, 5}, {BPF_RET | BPF_K, 0, 0, 0}};
    ASSERT_TRUE(in_private_netns([&] { run_case(invalid, counts, error, attached); }));
    EXPECT_FALSE(attached);
    EXPECT_EQ(error, "the kernel refused the event filter: Invalid argument");
    EXPECT_EQ(counts.events, 3);  // no filter: everything arrives
}

}  // namespace
}  // namespace ctnetlink

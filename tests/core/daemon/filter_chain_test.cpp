// SPDX-License-Identifier: GPL-2.0-or-later
// The host's chain of the filters' kernel-side programs (core/daemon/filter_chain.cpp): one program with the
// chain's meaning (accepted only when every filter's program accepts), each program starting with A and X
// zeroed; programs that cannot be chained or do not fit are left out with the reason; a refused attach is
// reported and changes no verdict; `describe` is asked only of ABI 1.3 plugins.
#include "core/daemon/filter_chain.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/filter.h>

#include <ctsync/sdk/testing/mocks.hpp>

#include "bpf.hpp"  // plugins/filter-bpf: the checker and the interpreter with the kernel's semantics

namespace ctsync::core {
namespace {

using ::testing::_;
using ::testing::NiceMock;
using ::testing::Return;
using Program = std::vector<sdk::BpfInstruction>;

sdk::BpfInstruction stmt(std::uint16_t code, std::uint32_t k) {
    return {code, 0, 0, k};
}
sdk::BpfInstruction jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
    return {code, jt, jf, k};
}

// Accepts when byte `at` of the packet is `value`; expects A and X zero at its start (it adds X to A).
Program byte_is(std::uint32_t at, std::uint32_t value) {
    return {stmt(BPF_ALU | BPF_ADD | BPF_X, 0),        // A += X: not 0 unless both were 0
            jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),  // otherwise: drop
            stmt(BPF_LDX | BPF_IMM, 9),                // leaves X dirty for whatever comes next
            stmt(BPF_LD | BPF_B | BPF_ABS, at),
            jump(BPF_JMP | BPF_JEQ | BPF_K, value, 1, 0),
            stmt(BPF_RET | BPF_K, 0),
            stmt(BPF_RET | BPF_K, 0xffffffff)};
}

struct Filters {
    std::vector<std::unique_ptr<NiceMock<testkit::MockFilter>>> mocks;
    std::vector<FilterSlot> slots;
    void add(std::optional<Program> program, std::uint32_t abi_minor = 3) {
        auto m = std::make_unique<NiceMock<testkit::MockFilter>>();
        ON_CALL(*m, kernel_program()).WillByDefault(Return(program));
        ON_CALL(*m, describe()).WillByDefault(Return(nlohmann::json{{"said", "hello"}}));
        slots.push_back({"f" + std::to_string(slots.size()), "filter-x", m.get(), abi_minor});
        mocks.push_back(std::move(m));
    }
};

TEST(FilterChain, AcceptsOnlyWhatEveryProgramAccepts) {
    Filters f;
    f.add(byte_is(0, 1));
    f.add(std::nullopt);  // in process only: no part in the kernel
    f.add(byte_is(1, 2));
    f.add(byte_is(2, 3));
    FilterChain chain(f.slots);
    std::string error;
    ASSERT_TRUE(filter_bpf::check(chain.program(), error)) << error << "\n"
                                                           << filter_bpf::disassemble(chain.program());
    for (std::uint8_t a = 0; a < 3; ++a) {
        for (std::uint8_t b = 1; b < 4; ++b) {
            for (std::uint8_t c = 2; c < 5; ++c) {
                const std::vector<std::uint8_t> packet = {a, b, c, 0};
                EXPECT_EQ(filter_bpf::run(chain.program(), packet) != 0, a == 1 && b == 2 && c == 3)
                    << int{a} << int{b} << int{c};
            }
        }
    }
    // The k-th witness accepts (whole) exactly what the k-th program of the chain is the first to drop.
    for (std::size_t k = 0; k < 3; ++k) {
        ASSERT_TRUE(filter_bpf::check(chain.witness(k), error)) << error;
    }
    auto first_to_drop = [&](std::vector<std::uint8_t> packet) {
        int which = -1;
        for (std::size_t k = 0; k < 3; ++k) {
            const std::uint32_t r = filter_bpf::run(chain.witness(k), packet);
            EXPECT_TRUE(r == 0 || r == 0xffffffffu) << "a witness keeps all of a message or nothing";
            if (r != 0) {
                EXPECT_EQ(which, -1) << "two witnesses took one message";
                which = static_cast<int>(k);
            }
        }
        return which;
    };
    EXPECT_EQ(first_to_drop({1, 2, 3, 0}), -1);
    EXPECT_EQ(first_to_drop({0, 2, 3, 0}), 0);
    EXPECT_EQ(first_to_drop({0, 0, 0, 0}), 0);
    EXPECT_EQ(first_to_drop({1, 0, 0, 0}), 1);
    EXPECT_EQ(first_to_drop({1, 2, 0, 0}), 2);
    const auto status = chain.status();
    EXPECT_EQ(status["filters"][0]["kernel"], "attached");
    EXPECT_EQ(status["filters"][1]["kernel"], "none");
    EXPECT_EQ(status["filters"][2]["kernel_instructions"], 7);
    EXPECT_EQ(status["filters"][0]["describe"]["said"], "hello");
    EXPECT_FALSE(status["kernel_program"]["attached"].get<bool>());  // not attached yet
}

TEST(FilterChain, LeavesOutWhatCannotBeChainedOrDoesNotFit) {
    Filters f;
    f.add(Program{stmt(BPF_LD | BPF_B | BPF_ABS, 0), stmt(BPF_RET | BPF_A, 0)});  // returns a register
    f.add(Program{stmt(BPF_LD | BPF_B | BPF_ABS, 0), jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 9, 0),
                  stmt(BPF_RET | BPF_K, 0)});  // jumps past its end
    Program huge(3995, stmt(BPF_LD | BPF_IMM, 0));
    huge.push_back(stmt(BPF_RET | BPF_K, 0xffff));
    f.add(huge);
    f.add(byte_is(0, 7));     // would push the chain past 4000 instructions
    f.add(byte_is(0, 7), 2);  // an ABI 1.2 plugin: not asked to describe itself
    FilterChain chain(f.slots);
    const auto status = chain.status();
    EXPECT_EQ(status["filters"][0]["kernel"], "left out");
    EXPECT_THAT(status["filters"][0]["reason"].get<std::string>(),
                ::testing::HasSubstr("returns a register"));
    EXPECT_EQ(status["filters"][1]["kernel"], "left out");
    EXPECT_THAT(status["filters"][1]["reason"].get<std::string>(), ::testing::HasSubstr("past the end"));
    EXPECT_EQ(status["filters"][2]["kernel"], "attached");
    EXPECT_EQ(status["filters"][3]["kernel"], "left out");
    EXPECT_THAT(status["filters"][3]["reason"].get<std::string>(), ::testing::HasSubstr("exceed 4000"));
    EXPECT_EQ(status["filters"][4]["describe"], nlohmann::json::object());
    EXPECT_LE(chain.program().size(), kMaxChainInstructions);
}

TEST(FilterChain, ARefusedProgramIsReportedAndEverythingStaysInProcess) {
    Filters f;
    f.add(byte_is(0, 1));
    FilterChain chain(f.slots);
    NiceMock<testkit::MockSource> source;
    NiceMock<testkit::MockLogger> log;
    EXPECT_CALL(source, attach_event_filter(_, _))
        .WillOnce([](std::span<const sdk::BpfInstruction>, std::string& e) {
            e = "Invalid argument";
            return false;
        });
    chain.attach(source, log);
    const auto status = chain.status();
    EXPECT_FALSE(status["kernel_program"]["attached"].get<bool>());
    EXPECT_EQ(status["kernel_program"]["error"], "Invalid argument");
    EXPECT_EQ(status["filters"][0]["kernel"], "refused");
}

TEST(FilterChain, NoProgramsAttachNothing) {
    Filters f;
    f.add(std::nullopt);
    FilterChain chain(f.slots);
    NiceMock<testkit::MockSource> source;
    NiceMock<testkit::MockLogger> log;
    EXPECT_CALL(source, attach_event_filter(_, _)).Times(0);
    chain.attach(source, log);
    EXPECT_TRUE(chain.program().empty());
    EXPECT_EQ(chain.status()["kernel_program"]["instructions"], 0);
}

}  // namespace
}  // namespace ctsync::core

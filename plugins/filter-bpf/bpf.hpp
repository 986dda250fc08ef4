// SPDX-License-Identifier: GPL-2.0-or-later
// Classic BPF for filter-bpf: the compiler from an expression to a socket filter over ctnetlink event
// messages, a checker with the kernel's rules, an interpreter with the kernel's semantics (the netlink
// attribute extensions included) and a disassembler in the style of `tcpdump -d`.
#pragma once

#include <cstdint>
#include <ctsync/sdk/source.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "expr.hpp"

namespace filter_bpf {

using Program = std::vector<ctsync::sdk::BpfInstruction>;

// What the compiled program returns: the whole message, or nothing (the kernel drops it).
inline constexpr std::uint32_t kAccept = 0xffffffff;
inline constexpr std::uint32_t kDrop = 0;

// The most instructions a compiled program may take, leaving room on the event socket for the source's
// own prologue (ADR-038) within the kernel's BPF_MAXINSNS (4096).
inline constexpr std::size_t kMaxProgram = 3800;

// Compiles the expression into a program that accepts exactly the messages whose flow has
// evaluate_kernel_view() kTrue or kUnknown, and every message that is not a conntrack flow event
// (expectations, anything short). nullopt with `why` when it would exceed kMaxProgram.
std::optional<Program> compile(const Node& node, std::string& why);

// The kernel's checks on a classic program (net/core/filter.c, bpf_check_classic) but the one on scratch
// memory read before written: length, the opcodes it accepts, jumps inside the program, no division by a
// constant zero nor constant shift of 32 or more, scratch memory indices, a return at the end; and only the
// extension loads run() implements (netlink attributes; protocol and packet type, 0 on netlink).
bool check(std::span<const ctsync::sdk::BpfInstruction> program, std::string& error);

// Runs a checked program over one message as the kernel runs a socket filter over an skb holding it:
// returns the number of bytes to keep (0 = drop). Out-of-bounds loads and division by zero end the
// program with 0, as in the kernel.
std::uint32_t run(std::span<const ctsync::sdk::BpfInstruction> program, std::span<const std::uint8_t> packet);

// One line per instruction: "(007) ldx      #0x1".
std::string disassemble(std::span<const ctsync::sdk::BpfInstruction> program);

}  // namespace filter_bpf

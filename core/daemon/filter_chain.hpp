// SPDX-License-Identifier: GPL-2.0-or-later
// The filters' kernel-side programs as one program on the source's event socket, in config order, with the
// chain's meaning (the first filter that drops wins): each program's accepting returns become jumps to the
// next program. Also what `ctsyncctl filters` reports: per filter, whether its program is in the kernel and
// what the filter says about itself (Filter::describe, ABI 1.3).
#pragma once

#include <ctsync/sdk/filter.hpp>
#include <ctsync/sdk/host.hpp>
#include <ctsync/sdk/source.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ctsync::core {

struct FilterSlot {
    std::string instance;
    std::string plugin;
    sdk::Filter* filter = nullptr;
    std::uint32_t abi_minor = 0;
};

// The most instructions the chained program takes, leaving room for the source's own prologue (ADR-038)
// within the kernel's 4096.
inline constexpr std::size_t kMaxChainInstructions = 4000;

class FilterChain {
  public:
    explicit FilterChain(std::vector<FilterSlot> slots);

    // The chained program (empty when no filter has one).
    const std::vector<sdk::BpfInstruction>& program() const { return program_; }

    // Attaches the program to the source's event socket; on refusal every filter stays in process (always
    // correct: the process evaluates every filter on every event anyway) and the reason is reported.
    void attach(sdk::Source& source, sdk::Logger& log);

    nlohmann::json status() const;

  private:
    struct Entry {
        FilterSlot slot;
        std::string kernel;  // "attached", "none", "left out", "refused"
        std::string reason;
        std::size_t instructions = 0;
    };
    std::vector<Entry> entries_;
    std::vector<sdk::BpfInstruction> program_;
    bool attached_ = false;
    std::string attach_error_;
};

}  // namespace ctsync::core

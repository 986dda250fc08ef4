// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/filter_chain.hpp"

#include <fmt/format.h>
#include <linux/filter.h>

#include <algorithm>

namespace ctsync::core {
namespace {

// Why a program cannot be chained, or empty: every return must be a constant (a "ret a" has no fixed
// verdict to turn into a jump) and every jump must stay inside the program.
std::string unchainable(const std::vector<sdk::BpfInstruction>& p) {
    if (p.empty() || BPF_CLASS(p.back().code) != BPF_RET) {
        return "the program does not end with a return";
    }
    for (std::size_t pc = 0; pc < p.size(); ++pc) {
        const auto& in = p[pc];
        if (BPF_CLASS(in.code) == BPF_RET && BPF_RVAL(in.code) != BPF_K) {
            return fmt::format("instruction {} returns a register, not a constant verdict", pc);
        }
        if (BPF_CLASS(in.code) == BPF_JMP) {
            const bool ja = BPF_OP(in.code) == BPF_JA;
            const std::size_t far = ja ? std::size_t{in.k} : std::max<std::size_t>(in.jt, in.jf);
            if (pc + 1 + far >= p.size()) {
                return fmt::format("instruction {} jumps past the end", pc);
            }
        }
    }
    return {};
}

}  // namespace

FilterChain::FilterChain(std::vector<FilterSlot> slots) {
    std::vector<std::vector<sdk::BpfInstruction>> programs;
    std::size_t total = 0;
    for (auto& slot : slots) {
        Entry entry{std::move(slot), "none", {}, 0};
        auto program = entry.slot.filter->kernel_program();
        if (!program) {
            entry.reason = "the filter has no kernel-side program: everything in process";
        } else if (std::string why = unchainable(*program); !why.empty()) {
            entry.kernel = "left out";
            entry.reason = why;
        } else if (total + program->size() + 2 > kMaxChainInstructions) {
            entry.kernel = "left out";
            entry.reason =
                fmt::format("the chained program would exceed {} instructions", kMaxChainInstructions);
        } else {
            entry.kernel = "attached";
            entry.instructions = program->size();
            total += program->size() + (programs.empty() ? 0 : 2);
            programs.push_back(std::move(*program));
        }
        entries_.push_back(std::move(entry));
    }
    for (std::size_t i = 0; i < programs.size(); ++i) {
        const bool last = i + 1 == programs.size();
        if (i > 0) {
            // The next program starts as a program does: A and X zero.
            program_.push_back({static_cast<std::uint16_t>(BPF_LD | BPF_IMM), 0, 0, 0});
            program_.push_back({static_cast<std::uint16_t>(BPF_LDX | BPF_IMM), 0, 0, 0});
        }
        const std::size_t start = program_.size();
        const std::size_t end = start + programs[i].size();  // where the next program's reset begins
        for (std::size_t pc = 0; pc < programs[i].size(); ++pc) {
            sdk::BpfInstruction in = programs[i][pc];
            if (!last && BPF_CLASS(in.code) == BPF_RET && in.k != 0) {
                // Accepted by this filter: on to the next one.
                in = {static_cast<std::uint16_t>(BPF_JMP | BPF_JA), 0, 0,
                      static_cast<std::uint32_t>(end - (start + pc) - 1)};
            }
            program_.push_back(in);
        }
    }
}

void FilterChain::attach(sdk::Source& source, sdk::Logger& log) {
    if (program_.empty()) {
        return;
    }
    std::string error;
    if (source.attach_event_filter(program_, error)) {
        attached_ = true;
        log.info(fmt::format("event=filters_in_kernel instructions={} filters={}", program_.size(),
                             std::count_if(entries_.begin(), entries_.end(),
                                           [](const Entry& e) { return e.kernel == "attached"; })));
        return;
    }
    attach_error_ = error;
    for (auto& e : entries_) {
        if (e.kernel == "attached") {
            e.kernel = "refused";
            e.reason = "the source refused the program: " + error;
        }
    }
    log.warn(fmt::format("event=filters_kernel_refused reason=\"{}\" action=evaluate_in_process", error));
}

nlohmann::json FilterChain::status() const {
    nlohmann::json filters = nlohmann::json::array();
    for (const auto& e : entries_) {
        nlohmann::json f = {{"instance", e.slot.instance},
                            {"plugin", e.slot.plugin},
                            {"kernel", e.kernel},
                            {"kernel_instructions", e.instructions}};
        if (!e.reason.empty()) {
            f["reason"] = e.reason;
        }
        // Filter::describe exists from ABI 1.3 on.
        f["describe"] = e.slot.abi_minor >= 3 ? e.slot.filter->describe() : nlohmann::json::object();
        filters.push_back(std::move(f));
    }
    nlohmann::json kernel = {{"attached", attached_}, {"instructions", program_.size()}};
    if (!attach_error_.empty()) {
        kernel["error"] = attach_error_;
    }
    return {{"kernel_program", std::move(kernel)}, {"filters", std::move(filters)}};
}

}  // namespace ctsync::core

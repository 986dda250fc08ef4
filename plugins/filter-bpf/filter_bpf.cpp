// SPDX-License-Identifier: GPL-2.0-or-later
#include "filter_bpf.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace filter_bpf {
namespace {

using namespace ctsync::sdk;

const ConfigKey kKeys[] = {
    {.name = "expression",
     .type = KeyType::kString,
     .required = true,
     .description = "The flows to replicate, in the filter language of docs/FILTERS.md (e.g. \"tcp and not "
                    "dst port 22\"); flows it does not match are not replicated.",
     .min = 1},
    {.name = "placement",
     .type = KeyType::kEnum,
     .default_json = "\"auto\"",
     .description = "auto: the kernel drops the events it can decide on (family, protocol, addresses, ports, "
                    "zone, NAT) before they reach the daemon, the process decides the rest; process: the "
                    "whole expression in process.",
     .choices = "auto|process"},
};

}  // namespace

std::span<const ConfigKey> keys() {
    return kKeys;
}

void validate(const PluginConfig& config, ConfigErrors& errors) noexcept {
    try {
        ParseError error;
        if (!parse(config.get_string("expression"), error)) {
            errors.push_back({".expression", format(error)});
        }
    } catch (const std::exception& e) {
        errors.push_back({".expression", e.what()});
    }
}

BpfFilter::BpfFilter(const PluginContext& context, std::string text, NodePtr root, Placing placing)
    : text_(std::move(text)),
      root_(std::move(root)),
      placing_(placing),
      log_(*context.logger),
      seen_(context.metrics->counter("seen",
                                     "flows (events and dump entries) the expression was evaluated on")),
      accepted_(context.metrics->counter("accepted", "flows the expression matched (replicated)")),
      dropped_(context.metrics->counter("dropped_in_process", "flows the process left out")) {
    if (placing_ == Placing::kAuto) {
        program_ = compile(*root_, no_program_reason_);
    } else {
        no_program_reason_ = "placement is \"process\"";
    }
    const Placement where = placement(*root_);
    log_.info(
        fmt::format("event=filter_ready expression=\"{}\" kernel_instructions={} kernel_exact={} "
                    "kernel_atoms={} process_only_atoms={}",
                    text_, program_ ? program_->size() : 0, program_ && kernel_exact(*root_),
                    where.in_kernel.size(), where.in_process_only.size()));
}

Verdict BpfFilter::evaluate(const FlowState& flow) const noexcept {
    seen_.add();
    if (filter_bpf::evaluate(*root_, flow)) {
        accepted_.add();
        return Verdict::kAccept;
    }
    dropped_.add();
    return Verdict::kDrop;
}

std::optional<std::vector<BpfInstruction>> BpfFilter::kernel_program() const noexcept {
    try {
        return program_;
    } catch (...) {
        return std::nullopt;  // out of memory copying: everything stays in process
    }
}

nlohmann::json BpfFilter::describe() const noexcept {
    try {
        const Placement where = placement(*root_);
        nlohmann::json kernel = {{"instructions", program_ ? program_->size() : 0},
                                 {"exact", program_.has_value() && kernel_exact(*root_)},
                                 {"atoms", program_ ? where.in_kernel : std::vector<std::string>{}}};
        if (!program_) {
            kernel["none"] = no_program_reason_;
        }
        std::vector<std::string> process_only = where.in_process_only;
        if (!program_) {
            process_only.insert(process_only.begin(), where.in_kernel.begin(), where.in_kernel.end());
        }
        return {{"expression", text_},
                {"canonical", to_string(*root_)},
                {"placement", placing_ == Placing::kAuto ? "auto" : "process"},
                {"kernel", std::move(kernel)},
                {"process", {{"atoms", process_only}, {"evaluates", "the whole expression"}}},
                {"counters",
                 {{"seen", seen_.value()},
                  {"accepted", accepted_.value()},
                  {"dropped_in_process", dropped_.value()}}}};
    } catch (...) {
        return nlohmann::json::object();
    }
}

std::unique_ptr<Plugin> create(const PluginContext& context, const PluginConfig& config) {
    const std::string text = config.get_string("expression");
    ParseError error;
    auto root = parse(text, error);
    if (!root) {
        throw std::invalid_argument("expression: " + format(error));
    }
    const Placing placing = config.get_string("placement") == "process" ? Placing::kProcess : Placing::kAuto;
    return std::make_unique<BpfFilter>(context, text, std::move(*root), placing);
}

}  // namespace filter_bpf

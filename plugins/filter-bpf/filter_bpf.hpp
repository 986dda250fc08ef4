// SPDX-License-Identifier: GPL-2.0-or-later
// filter-bpf: one expression (docs/FILTERS.md) decides which flows are replicated. The part the kernel can
// decide is compiled to classic BPF and attached by the host to the source's event socket, so unwanted
// events never wake the daemon; the whole expression is evaluated in process on every event that arrives
// and on dumps, with the same meaning.
#pragma once

#include <ctsync/sdk/sdk.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpf.hpp"
#include "expr.hpp"

namespace filter_bpf {

// Where the expression runs: "auto" (the kernel takes what it can decide, the process the rest) or
// "process" (everything in process; for comparisons and for kernels that refuse the program).
enum class Placing : std::uint8_t { kAuto, kProcess };

class BpfFilter final : public ctsync::sdk::Filter {
  public:
    BpfFilter(const ctsync::sdk::PluginContext& context, std::string text, NodePtr root, Placing placing);
    void stop() noexcept override {}
    ctsync::sdk::Verdict evaluate(const ctsync::sdk::FlowState& flow) const noexcept override;
    std::optional<std::vector<ctsync::sdk::BpfInstruction>> kernel_program() const noexcept override;
    nlohmann::json describe() const noexcept override;

  private:
    std::string text_;
    NodePtr root_;
    Placing placing_;
    std::optional<Program> program_;
    std::string no_program_reason_;
    ctsync::sdk::Logger& log_;
    ctsync::sdk::Counter& seen_;
    ctsync::sdk::Counter& accepted_;
    ctsync::sdk::Counter& dropped_;
};

std::span<const ctsync::sdk::ConfigKey> keys();
void validate(const ctsync::sdk::PluginConfig& config, ctsync::sdk::ConfigErrors& errors) noexcept;
std::unique_ptr<ctsync::sdk::Plugin> create(const ctsync::sdk::PluginContext& context,
                                            const ctsync::sdk::PluginConfig& config);

}  // namespace filter_bpf

// SPDX-License-Identifier: GPL-2.0-or-later
// filter-port: drops flows whose original destination port is in a configured list.
#pragma once

#include <bitset>
#include <ctsync/sdk/sdk.hpp>
#include <memory>

namespace filter_port {

// The plugin's key table and its cross-key check, shared by plugin.cpp and the tests.
std::span<const ctsync::sdk::ConfigKey> keys();
void validate(const ctsync::sdk::PluginConfig& config, ctsync::sdk::ConfigErrors& errors) noexcept;

class PortFilter final : public ctsync::sdk::Filter {
  public:
    // `config` has passed validate().
    PortFilter(const ctsync::sdk::PluginContext& context, const ctsync::sdk::PluginConfig& config);

    void stop() noexcept override {}
    ctsync::sdk::Verdict evaluate(const ctsync::sdk::FlowState& flow) const noexcept override;
    // Not expressible in the kernel here: dumps and events are both filtered in process.
    std::optional<std::vector<ctsync::sdk::BpfInstruction>> kernel_program() const noexcept override {
        return std::nullopt;
    }

  private:
    std::bitset<65536> ports_;
    std::bitset<256> protocols_;
    bool log_drops_;
    ctsync::sdk::Logger& logger_;
    ctsync::sdk::Counter& dropped_;
    ctsync::sdk::Counter& accepted_;
};

std::unique_ptr<ctsync::sdk::Plugin> create(const ctsync::sdk::PluginContext& context,
                                            const ctsync::sdk::PluginConfig& config);

}  // namespace filter_port

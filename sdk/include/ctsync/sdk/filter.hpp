// SPDX-License-Identifier: GPL-2.0-or-later
// Filter: decides which flows are replicated. Several filters run in config order; the first kDrop wins.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "ctsync/sdk/flow.hpp"
#include "ctsync/sdk/plugin.hpp"
#include "ctsync/sdk/source.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

enum class Verdict : std::uint8_t { kAccept = 1, kDrop = 2 };

class Filter : public Plugin {
  public:
    Category category() const noexcept final { return Category::kFilter; }
    // Decides for one flow. Pure, cheap, on the executor thread, never throws.
    virtual Verdict evaluate(const FlowState& flow) const noexcept = 0;
    // The same decision as a classic BPF program over ctnetlink event messages, if the filter can express
    // it in the kernel; nullopt otherwise. The host attaches it to the source's event socket and still
    // calls evaluate() on dumps, so both must agree.
    virtual std::optional<std::vector<BpfInstruction>> kernel_program() const noexcept = 0;

    // ABI 1.3. What the filter decides and where, for `ctsyncctl filters`: a JSON object the host shows
    // as it is (filter-bpf: its expression, the atoms the kernel decides and those left to the process, its
    // own counters). The host asks only plugins built for ABI 1.3 or later (older ones lack the function).
    virtual nlohmann::json describe() const noexcept { return nlohmann::json::object(); }
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk

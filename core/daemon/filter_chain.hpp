// SPDX-License-Identifier: GPL-2.0-or-later
// The filters' kernel-side programs as one program on the source's event socket, in config order, with the
// chain's meaning (the first filter that drops wins): each program's accepting returns become jumps to the
// next program. Also what `ctsyncctl filters` reports: per filter, whether its program is in the kernel and
// what the filter says about itself (Filter::describe, ABI 1.3), and how many events its program dropped
// in the kernel. Those never reach the daemon, so the kernel counts them: per filter, a socket on the same
// event groups whose program (its witness) accepts exactly the events that filter is the first in the chain
// to drop. The socket is never read and its buffer is tiny, so each such event overflows it, and the kernel
// counts the overflow (the socket's drop counter, read with SO_MEMINFO once a second): no wake-up, no copy.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <ctsync/sdk/filter.hpp>
#include <ctsync/sdk/host.hpp>
#include <ctsync/sdk/source.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/metrics/registry.hpp"

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

    FilterChain(const FilterChain&) = delete;
    FilterChain& operator=(const FilterChain&) = delete;
    ~FilterChain();

    // The chained program (empty when no filter has one), and the witness of the k-th program in it.
    const std::vector<sdk::BpfInstruction>& program() const { return program_; }
    const std::vector<sdk::BpfInstruction>& witness(std::size_t k) const { return witnesses_.at(k); }

    // Attaches the program to the source's event socket; on refusal every filter stays in process (always
    // correct: the process evaluates every filter on every event anyway) and the reason is reported.
    void attach(sdk::Source& source, sdk::Logger& log);

    // Once attached: opens the witness sockets and counts each attached filter's kernel drops in
    // "<instance>.dropped_in_kernel" (refreshed once a second on `executor`, and by status()). A failure is
    // logged and reported by status(); nothing else changes.
    void count_kernel_drops(boost::asio::any_io_executor executor, MetricsRegistry& metrics,
                            sdk::Logger& log);

    nlohmann::json status();

  private:
    struct Entry {
        FilterSlot slot;
        std::string kernel;  // "attached", "none", "left out", "refused"
        std::string reason;
        std::size_t instructions = 0;
        sdk::Counter* dropped_in_kernel = nullptr;  // while counting
        int witness_fd = -1;
        std::uint32_t kernel_drops =
            0;  // the socket's drop count when last read (the kernel's wraps at 2^32)
    };
    enum class Last { kKeep, kOnToNext, kInvert };
    static void append(std::vector<sdk::BpfInstruction>& out, const std::vector<sdk::BpfInstruction>& program,
                       Last how);
    void wait_witness();
    void read_witnesses();

    std::vector<Entry> entries_;
    std::vector<std::size_t> attached_entries_;  // entries_ index of the k-th program in the chain
    std::vector<sdk::BpfInstruction> program_;
    std::vector<std::vector<sdk::BpfInstruction>> witnesses_;
    bool attached_ = false;
    std::string attach_error_;
    std::unique_ptr<boost::asio::steady_timer> witness_timer_;
    std::string counting_error_;
};

}  // namespace ctsync::core

// SPDX-License-Identifier: GPL-2.0-or-later
// Source: reads this node's kernel connection-tracking table (dump + events) and writes entries into it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ctsync/sdk/flow.hpp"
#include "ctsync/sdk/plugin.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

// Why entries may have been missed.
enum class LossReason : std::uint8_t {
    kOverrun = 1,    // the kernel dropped events (ENOBUFS on the event socket)
    kMalformed = 2,  // a message could not be parsed and was skipped
};

// Receives what the source reads. Implemented by the core; called on the executor thread only; must not be
// called again from inside one of its own callbacks. Never throws.
class FlowSink {
  public:
    virtual ~FlowSink() = default;
    virtual void on_flow(EventKind kind, const FlowState& flow) noexcept = 0;
    virtual void on_expectation(EventKind kind, const Expectation& expectation) noexcept = 0;
    // A full dump starts: every entry that exists will be reported with kDump before the matching
    // on_dump_end, interleaved with events; the core sweeps entries neither dumped nor changed by an event
    // during `generation` when `complete` is true (mark and sweep, no per-entry lookups in the kernel).
    virtual void on_dump_begin(std::uint64_t generation) noexcept = 0;
    virtual void on_dump_end(std::uint64_t generation, bool complete) noexcept = 0;
    // Entries may have been missed; the source follows up with a dump on its own.
    virtual void on_loss(LossReason reason, std::uint64_t count) noexcept = 0;
};

// One write into the kernel table. Exactly one of `flow` / `expectation` is set; pointers are only valid
// during the call.
struct WriteOp {
    enum class Kind : std::uint8_t { kUpsert = 1, kDelete = 2 };
    Kind kind = Kind::kUpsert;
    const FlowState* flow = nullptr;
    const Expectation* expectation = nullptr;
};

struct WriteError {
    std::size_t index = 0;  // position in the span given to write()
    int error = 0;          // errno from the kernel
    std::string message;
};

// Outcome of a batch: every op is counted as applied or failed; a failure never aborts the rest.
struct WriteReport {
    std::uint64_t applied = 0;
    std::uint64_t failed = 0;
    std::vector<WriteError> errors;  // the first few failures, for the log (bounded by the source)
};

// A classic BPF instruction, layout-identical to the kernel's struct sock_filter.
struct BpfInstruction {
    std::uint16_t code = 0;
    std::uint8_t jt = 0;
    std::uint8_t jf = 0;
    std::uint32_t k = 0;
};

class Source : public Plugin {
  public:
    Category category() const noexcept final { return Category::kSource; }
    // Subscribes to events, then dumps the table into `sink`. `sink` outlives the source. Returns false and
    // sets `error` when the kernel refuses (no ctnetlink, no permission).
    virtual bool start(FlowSink& sink, std::string& error) noexcept = 0;
    // Asks for a full dump (mark-and-sweep through the sink); asynchronous.
    virtual void request_dump() noexcept = 0;
    // Applies `ops` in order, in kernel batches, synchronously. Upserts of expectations must come after
    // their masters in `ops`; the source does not reorder.
    virtual WriteReport write(std::span<const WriteOp> ops) noexcept = 0;
    // Removes every entry (flows and expectations) of this node's table. Synchronous.
    virtual WriteReport flush() noexcept = 0;
    // Installs a kernel-side filter on the event socket (filter-bpf). Returns false with `error` when the
    // kernel refuses it; the previous filter then stays in place.
    virtual bool attach_event_filter(std::span<const BpfInstruction> program,
                                     std::string& error) noexcept = 0;

    // ABI 1.2. True when write() may be called from a thread of the host's other than the executor's, while
    // the executor thread goes on running the rest of the source (events, dumps). The host still makes one
    // call of write() or flush() at a time, never two at once, and calls nothing else off the executor. A
    // warm standby writes from such a thread so that receiving replication never waits on the kernel. The
    // host asks only plugins built for ABI 1.2 or later (older ones lack this function) and otherwise writes
    // on the executor thread, as before.
    virtual bool concurrent_writes() const noexcept { return false; }
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk

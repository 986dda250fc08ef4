// SPDX-License-Identifier: GPL-2.0-or-later
// The full receive path after a valid seal: what an authenticated peer (or one whose key leaked) can make
// the replication engine do. The input is a script of datagrams; each is sealed with the test key, so the
// fuzzer reaches the decoder, the per-sender ordering, NACKs, bulk handling and the external cache, not only
// the tag check.
//
// Input: byte 0 = the engine's role (bit 0: primary, sending a table of 16 flows; else a backup), then
// chunks of [flags u8][length u16 big-endian][payload]: flags bit 0 = control (else data), bits 1-2 = the
// sender (nodes 2, 3, 4, or this node's own id 1), bit 3 = the sender's older epoch, bit 4 = the previous
// packet number again (a replay). A fresh engine per input: the outcome depends on the input only.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/cache/flow_cache.hpp"
#include "core/metrics/registry.hpp"
#include "core/replication/engine.hpp"
#include "core/replication/proto_table.hpp"
#include "core/wire/seal.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/support/flows.hpp"

using namespace ctsync;
using namespace ctsync::core;

namespace {

wire::Keyring test_keyring() {
    std::array<std::uint8_t, wire::kKeyBytes> key{};
    key.fill(7);
    return wire::Keyring({{1, key}}, 1, false);
}

class DropLink final : public sdk::Transport {
  public:
    void stop() noexcept override {}
    bool start(sdk::TransportSink&, std::string&) noexcept override { return true; }
    bool send(std::span<const std::byte>) noexcept override { return true; }
    std::size_t max_datagram_size() const noexcept override { return 1400; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    boost::asio::io_context io;
    FlowCache internal, external;
    ProtoTable protos;
    MetricsRegistry metrics;
    fuzz::NullLogger log;
    DropLink link;
    EngineOptions options;
    options.sending = (data[0] & 1) != 0;
    options.epoch = 1000;
    const wire::Keyring sealer = test_keyring();
    {
        Engine engine(io.get_executor(), options, 1, test_keyring(), internal, external, protos, metrics,
                      log);
        engine.add_link("fuzz", link);
        internal.set_observer(&engine);
        if (options.sending) {
            for (std::uint32_t i = 0; i < 16; ++i) {
                internal.upsert(test::nated_tcp_flow(i), 1);
            }
        }
        CTSYNC_FUZZ_CHECK(engine.start().empty());
        io.poll();

        std::uint64_t packet = 0;
        std::size_t at = 1;
        while (at + 3 <= size) {
            const std::uint8_t flags = data[at];
            const std::size_t length =
                std::min<std::size_t>((std::size_t{data[at + 1]} << 8) | data[at + 2], size - at - 3);
            at += 3;
            wire::Header header;
            header.type = (flags & 1) ? wire::DatagramType::kControl : wire::DatagramType::kData;
            header.node_id = ((flags >> 1) & 3) == 3 ? 1 : 2 + ((flags >> 1) & 3);
            header.epoch = (flags & 8) ? 500 : 900;
            if ((flags & 16) == 0 || packet == 0) {
                ++packet;
            }
            header.packet = packet;
            header.key_id = 1;
            const auto datagram = sealer.seal(header, fuzz::as_bytes(data + at, length));
            engine.on_datagram(0, datagram);
            io.poll();
            at += length;
        }
        // The external cache stays consistent: every flow is found under its own key.
        external.for_each_flow(
            [&](const sdk::FlowState& f) { CTSYNC_FUZZ_CHECK(external.find(f.key()) == &f); });
        internal.set_observer(nullptr);
        engine.stop();
        io.poll();
    }
    return 0;
}

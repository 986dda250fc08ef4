// SPDX-License-Identifier: GPL-2.0-or-later
// The wire decoders on unauthenticated bytes, as a datagram arrives from the network before its tag is
// checked: the header, the keyring's open (a forged tag must never pass), and the record decoder on the same
// bytes as a control payload and as a data payload (after the 8-byte sequence). Every record list the
// decoder accepts encodes back to records that decode equal.
#include <cstdint>
#include <string>
#include <vector>

#include "core/wire/records.hpp"
#include "core/wire/seal.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ctsync::core;

namespace {

const wire::Keyring& keyring() {
    static const wire::Keyring keys = [] {
        std::array<std::uint8_t, wire::kKeyBytes> key{};
        key.fill(7);  // the key of tests/fuzz/corpus/wire_decode's sealed seeds (make_seeds.cpp)
        return wire::Keyring({{1, key}}, 1, false);
    }();
    return keys;
}

void records_round_trip(std::span<const std::byte> payload) {
    std::vector<wire::Record> records;
    std::string error;
    if (!wire::decode_records(payload, records, error)) {
        CTSYNC_FUZZ_CHECK(!error.empty());
        return;
    }
    std::vector<std::byte> again;
    wire::Writer w(again);
    for (const auto& r : records) {
        wire::encode_record(w, r);
    }
    std::vector<wire::Record> decoded;
    CTSYNC_FUZZ_CHECK(wire::decode_records(again, decoded, error));
    CTSYNC_FUZZ_CHECK(decoded == records);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = ctsync::fuzz::as_bytes(data, size);
    wire::Header header;
    std::string error;
    // The header alone says nothing of the size (open() checks it): a length that does not match the
    // datagram must make open() refuse it.
    const bool header_ok = wire::decode_header(bytes, header, error);
    const bool length_matches = header_ok && size == wire::kHeaderSize + header.length + wire::kTagBytes;
    std::vector<std::byte> payload;
    error.clear();
    const bool opened = keyring().open(bytes, header, payload, error);
    CTSYNC_FUZZ_CHECK(!opened || length_matches);
    if (header_ok && !length_matches) {
        CTSYNC_FUZZ_CHECK(error == "bad_length");
    }
    if (opened) {
        // Only a datagram sealed with the key (a seed) opens.
        records_round_trip(header.type == wire::DatagramType::kData && payload.size() >= 8
                               ? std::span<const std::byte>(payload).subspan(8)
                               : std::span<const std::byte>(payload));
    } else {
        CTSYNC_FUZZ_CHECK(!error.empty());
    }
    records_round_trip(bytes);
    if (size >= 8) {
        records_round_trip(bytes.subspan(8));
    }
    return 0;
}

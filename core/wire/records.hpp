// SPDX-License-Identifier: GPL-2.0-or-later
// Wire protocol v1 (docs/PROTOCOL.md): the datagram header and the records datagrams carry, with strict
// encoders and decoders. Pure functions over bytes; no I/O, no state. Decoders never throw and accept a
// record only when every length, count and enum value is exactly right.
#pragma once

#include <cstdint>
#include <ctsync/sdk/flow.hpp>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/wire/bytes.hpp"

namespace ctsync::core::wire {

inline constexpr std::uint32_t kMagic = 0x43545359;  // "CTSY"
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;
inline constexpr std::size_t kRecordHeaderSize = 3;  // type u8, body length u16

enum class DatagramType : std::uint8_t {
    kData = 1,     // sequenced: payload = data sequence (u64) + records; acknowledged, retransmitted
    kControl = 2,  // unsequenced: ACK, NACK, ALIVE, bulk requests; never retransmitted
};

inline constexpr std::uint8_t kFlagEncrypted = 0x01;

struct Header {
    DatagramType type = DatagramType::kData;
    std::uint8_t key_id = 0;
    std::uint8_t flags = 0;
    std::uint32_t node_id = 0;
    std::uint64_t epoch = 0;   // the sender's boot epoch (µs since 1970 at start): a restart is a new epoch
    std::uint64_t packet = 0;  // unique per datagram within (node, epoch): replay window and AEAD nonce
    std::uint16_t length = 0;  // payload bytes after the header, before the authentication tag
    friend bool operator==(const Header&, const Header&) = default;
};

void encode_header(Writer& w, const Header& h);
// Checks magic, version, type and reserved bits; `length` is read, not checked against the datagram's size
// (Keyring::open does that: bad_length). Sets `error` to a counter-friendly reason on failure.
bool decode_header(std::span<const std::byte> datagram, Header& out, std::string& error);

enum class RecordType : std::uint8_t {
    kFlowFull = 1,
    kFlowUpdate = 2,
    kFlowDelete = 3,
    kExpectNew = 4,
    kExpectDelete = 5,
    kBulkStart = 6,
    kBulkProgress = 7,
    kBulkEnd = 8,
    kFlowRelay = 9,
    kAck = 16,
    kNack = 17,
    kAlive = 18,
    kBulkRequest = 19,
};

// A flow in full; `flow_id` is assigned by the node whose kernel holds the flow and names it in later
// compact updates and deletes. The reply tuple shares the original's family and protocol.
struct FlowFull {
    std::uint32_t flow_id = 0;
    sdk::FlowState flow;
    friend bool operator==(const FlowFull&, const FlowFull&) = default;
};

// Which members of FlowUpdate::values are carried.
namespace field {
inline constexpr std::uint8_t kProtoState = 0x01;  // tcp, sctp, dccp blocks (each only when non-zero)
inline constexpr std::uint8_t kStatus = 0x02;
inline constexpr std::uint8_t kTimeout = 0x04;
inline constexpr std::uint8_t kMark = 0x08;
inline constexpr std::uint8_t kLabels = 0x10;
inline constexpr std::uint8_t kNat = 0x20;  // snat, dnat, both sequence adjustments
inline constexpr std::uint8_t kHelper = 0x40;
inline constexpr std::uint8_t kAll = 0x7f;
}  // namespace field

// What changed in a flow the receiver already holds under `flow_id`.
struct FlowUpdate {
    std::uint32_t flow_id = 0;
    std::uint8_t fields = 0;
    sdk::FlowState values;  // only the members named by `fields` are meaningful
    friend bool operator==(const FlowUpdate&, const FlowUpdate&) = default;
};

// A flow of another node's table, sent by a node that holds a copy of it (a relay bulk transfer: the origin
// is gone, and a rejoining node takes its table from the backup that saw the most of it).
struct FlowRelay {
    std::uint32_t origin = 0;
    sdk::FlowState flow;
    friend bool operator==(const FlowRelay&, const FlowRelay&) = default;
};

struct FlowDelete {
    std::uint32_t flow_id = 0;
    friend bool operator==(const FlowDelete&, const FlowDelete&) = default;
};

struct ExpectNew {
    sdk::Expectation expectation;
    friend bool operator==(const ExpectNew&, const ExpectNew&) = default;
};

// Only zone, master and expected are carried (the expectation's identity).
struct ExpectDelete {
    sdk::Expectation expectation;
    friend bool operator==(const ExpectDelete&, const ExpectDelete&) = default;
};

// Bulk transfer markers travel in the sequenced stream, so they are ordered with the live records around
// them. `requester` 0 addresses every receiver (alarm mode's periodic refresh).
struct BulkStart {
    std::uint32_t requester = 0;
    std::uint32_t bulk_id = 0;
    std::uint32_t total = 0;   // entries the sender will send (flows + expectations at the start)
    std::uint32_t origin = 0;  // 0: the sender's own table; else the table it holds from that node (relay)
    friend bool operator==(const BulkStart&, const BulkStart&) = default;
};
struct BulkProgress {
    std::uint32_t requester = 0;
    std::uint32_t bulk_id = 0;
    std::uint32_t sent = 0;
    std::uint32_t total = 0;
    friend bool operator==(const BulkProgress&, const BulkProgress&) = default;
};
struct BulkEnd {
    std::uint32_t requester = 0;
    std::uint32_t bulk_id = 0;
    std::uint32_t sent = 0;
    friend bool operator==(const BulkEnd&, const BulkEnd&) = default;
};

// Cumulative: every data datagram of (peer, epoch) up to `seq` has been received and applied.
struct Ack {
    std::uint32_t peer = 0;
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;
    friend bool operator==(const Ack&, const Ack&) = default;
};

inline constexpr std::size_t kMaxNackRanges = 32;
struct Nack {
    std::uint32_t peer = 0;
    std::uint64_t epoch = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // inclusive, first <= last
    friend bool operator==(const Nack&, const Nack&) = default;
};

inline constexpr std::size_t kMaxAliveSeen = 32;
struct SeenSender {
    std::uint32_t node = 0;
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;  // received contiguously up to here
    friend bool operator==(const SeenSender&, const SeenSender&) = default;
};
inline constexpr std::uint8_t kAliveHello = 0x01;  // first ALIVE after start
struct Alive {
    std::uint8_t role = 0;  // sdk::Role
    std::uint8_t flags = 0;
    std::uint64_t next_seq = 0;  // the next data sequence this node will use (last sent + 1)
    std::uint32_t flows = 0;     // flows this node's internal cache holds
    std::vector<SeenSender> seen;
    friend bool operator==(const Alive&, const Alive&) = default;
};

// Asks `target` for a bulk transfer of its table. `request_id` lets the target ignore repeats of a request it
// is already serving.
struct BulkRequest {
    std::uint32_t target = 0;
    std::uint32_t request_id = 0;
    std::uint32_t origin = 0;  // 0: the target's own table; else the copy it holds of `origin`'s (relay)
    friend bool operator==(const BulkRequest&, const BulkRequest&) = default;
};

using Record = std::variant<FlowFull, FlowUpdate, FlowDelete, ExpectNew, ExpectDelete, BulkStart,
                            BulkProgress, BulkEnd, Ack, Nack, Alive, BulkRequest, FlowRelay>;

// Appends one record (type, length, body). Throws std::length_error if a body exceeds 65535 bytes (cannot
// happen with the flow model's fixed-size fields and the list limits above).
void encode_record(Writer& w, const Record& record);
// Decodes every record of a payload. Fails (with `error` naming the record index and the reason) on an
// unknown type, a length that does not match the body, a bad enum, or trailing bytes.
bool decode_records(std::span<const std::byte> payload, std::vector<Record>& out, std::string& error);

// The fields in which `after` differs from `before` (same key). Returns field::kAll | 0x80 when something a
// compact update cannot carry changed (reply tuple, zone directions): send the flow in full.
inline constexpr std::uint8_t kNeedsFull = 0x80;
std::uint8_t changed_fields(const sdk::FlowState& before, const sdk::FlowState& after);
// Copies the fields named by `fields` from `from` into `to`.
void copy_fields(sdk::FlowState& to, const sdk::FlowState& from, std::uint8_t fields);

const char* to_string(RecordType type);

}  // namespace ctsync::core::wire

// SPDX-License-Identifier: GPL-2.0-or-later
// Datagram authentication (and optional encryption) with libsodium's XChaCha20-Poly1305 AEAD, pre-shared
// keys read from files that only their owner may read, a key id per datagram for rotation, and a replay
// window per (node, epoch). Never hand-rolled crypto: every primitive is libsodium's.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/wire/records.hpp"

namespace ctsync::core::wire {

inline constexpr std::size_t kKeyBytes = 32;
inline constexpr std::size_t kTagBytes = 16;

struct KeyFile {
    std::uint8_t id = 0;
    std::filesystem::path path;
};

// Reads one key: 64 hex digits (surrounding whitespace ignored) or exactly 32 raw bytes. Refuses files that
// are not regular, that group or others may read or write, or that hold anything else; `error` names the file
// and the problem.
std::optional<std::array<std::uint8_t, kKeyBytes>> read_key_file(const std::filesystem::path& path,
                                                                 std::string& error);

class Keyring {
  public:
    // Loads every key file; `send_id` must be one of them. Returns nullopt with `error` set otherwise.
    static std::optional<Keyring> load(const std::vector<KeyFile>& files, std::uint8_t send_id, bool encrypt,
                                       std::string& error);
    // For tests and tools: keys given directly.
    Keyring(std::map<std::uint8_t, std::array<std::uint8_t, kKeyBytes>> keys, std::uint8_t send_id,
            bool encrypt);

    // Builds a complete datagram: header (key id, flags and length filled in here), payload (encrypted when
    // configured), tag. `header.packet` must never repeat within (node, epoch): it is the nonce.
    std::vector<std::byte> seal(Header header, std::span<const std::byte> payload) const;

    // Verifies a received datagram. On success fills `header` and `payload` (decrypted). On failure returns
    // false with `reason` one of: truncated, bad_magic, bad_version, bad_type, bad_header, bad_length,
    // unknown_key, not_encrypted (this keyring encrypts and the datagram is plain), bad_tag.
    bool open(std::span<const std::byte> datagram, Header& header, std::vector<std::byte>& payload,
              std::string& reason) const;

    std::uint8_t send_id() const { return send_id_; }
    bool encrypt() const { return encrypt_; }

  private:
    std::map<std::uint8_t, std::array<std::uint8_t, kKeyBytes>> keys_;
    std::uint8_t send_id_ = 0;
    bool encrypt_ = false;
};

// Packet numbers seen from one (node, epoch): a sliding window of the last 4096 numbers. A number at or
// below the window's start, or already seen, is a replay (or the parallel link's copy of a datagram).
class ReplayWindow {
  public:
    static constexpr std::uint64_t kSize = 4096;
    // Returns true and records `packet` when it is new.
    bool accept(std::uint64_t packet);

  private:
    std::uint64_t top_ = 0;  // highest packet number accepted (0: none yet)
    std::array<std::uint64_t, kSize / 64> bits_{};
};

}  // namespace ctsync::core::wire

// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/wire/seal.hpp"

#include <fmt/format.h>
#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace ctsync::core::wire {
namespace {

void ensure_sodium() {
    static const bool ready = sodium_init() >= 0;
    if (!ready) {
        throw std::runtime_error("libsodium failed to initialise");
    }
}

// Unique per datagram as long as (node, epoch, packet) is: epochs are start times in microseconds and packet
// numbers never repeat within an epoch.
std::array<unsigned char, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES> nonce_of(const Header& h) {
    std::array<unsigned char, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES> n{};
    std::vector<std::byte> bytes;
    Writer w(bytes);
    w.u32(h.node_id);
    w.u64(h.epoch);
    w.u64(h.packet);
    std::memcpy(n.data(), bytes.data(), bytes.size());
    return n;
}

}  // namespace

std::optional<std::array<std::uint8_t, kKeyBytes>> read_key_file(const std::filesystem::path& path,
                                                                 std::string& error) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        error = fmt::format("key file '{}': {}", path.string(), std::strerror(errno));
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        error = fmt::format("key file '{}' is not a regular file", path.string());
        return std::nullopt;
    }
    if ((st.st_mode & 077) != 0) {
        error = fmt::format("key file '{}' has mode {:04o}: group and others must have no access (chmod 600)",
                            path.string(), st.st_mode & 07777);
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
        error = fmt::format("key file '{}' cannot be read", path.string());
        return std::nullopt;
    }
    std::array<std::uint8_t, kKeyBytes> key{};
    if (content.size() == kKeyBytes) {
        std::memcpy(key.data(), content.data(), kKeyBytes);
        return key;
    }
    auto first = content.find_first_not_of(" \t\r\n");
    auto last = content.find_last_not_of(" \t\r\n");
    std::string hex = first == std::string::npos ? "" : content.substr(first, last - first + 1);
    std::size_t decoded = 0;
    ensure_sodium();
    if (hex.size() != 2 * kKeyBytes ||
        sodium_hex2bin(key.data(), key.size(), hex.data(), hex.size(), nullptr, &decoded, nullptr) != 0 ||
        decoded != kKeyBytes) {
        error = fmt::format(
            "key file '{}' must hold 64 hex digits or 32 raw bytes (found {} bytes); create one "
            "with: (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE)",
            path.string(), content.size());
        return std::nullopt;
    }
    return key;
}

std::optional<Keyring> Keyring::load(const std::vector<KeyFile>& files, std::uint8_t send_id, bool encrypt,
                                     std::string& error) {
    std::map<std::uint8_t, std::array<std::uint8_t, kKeyBytes>> keys;
    for (const auto& f : files) {
        auto key = read_key_file(f.path, error);
        if (!key) {
            return std::nullopt;
        }
        if (!keys.emplace(f.id, *key).second) {
            error = fmt::format("key id {} is given twice", f.id);
            return std::nullopt;
        }
    }
    if (keys.count(send_id) == 0) {
        error = fmt::format("send key id {} is not among the configured keys", send_id);
        return std::nullopt;
    }
    return Keyring(std::move(keys), send_id, encrypt);
}

Keyring::Keyring(std::map<std::uint8_t, std::array<std::uint8_t, kKeyBytes>> keys, std::uint8_t send_id,
                 bool encrypt)
    : keys_(std::move(keys)), send_id_(send_id), encrypt_(encrypt) {
    ensure_sodium();
}

std::vector<std::byte> Keyring::seal(Header header, std::span<const std::byte> payload) const {
    if (payload.size() > 0xffff) {
        throw std::length_error("datagram payload above 65535 bytes");
    }
    header.key_id = send_id_;
    header.flags = encrypt_ ? kFlagEncrypted : 0;
    header.length = static_cast<std::uint16_t>(payload.size());
    std::vector<std::byte> out;
    out.reserve(kHeaderSize + payload.size() + kTagBytes);
    Writer w(out);
    encode_header(w, header);
    const auto& key = keys_.at(send_id_);
    const auto nonce = nonce_of(header);
    std::array<unsigned char, kTagBytes> tag{};
    unsigned long long tag_len = 0;
    if (encrypt_) {
        out.resize(kHeaderSize + payload.size() + 1);  // +1: a valid output pointer for an empty payload
        auto* cipher = reinterpret_cast<unsigned char*>(out.data() + kHeaderSize);
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
            cipher, tag.data(), &tag_len, reinterpret_cast<const unsigned char*>(payload.data()),
            payload.size(), reinterpret_cast<const unsigned char*>(out.data()), kHeaderSize, nullptr,
            nonce.data(), key.data());
        out.resize(kHeaderSize + payload.size());
    } else {
        w.bytes(payload.data(), payload.size());
        unsigned char none[1] = {0};  // no message: the header and payload are all associated data
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
            none, tag.data(), &tag_len, none, 0, reinterpret_cast<const unsigned char*>(out.data()),
            out.size(), nullptr, nonce.data(), key.data());
    }
    w.bytes(tag.data(), tag.size());
    return out;
}

bool Keyring::open(std::span<const std::byte> datagram, Header& header, std::vector<std::byte>& payload,
                   std::string& reason) const {
    if (!decode_header(datagram, header, reason)) {
        return false;
    }
    if (datagram.size() != kHeaderSize + header.length + kTagBytes) {
        reason = "bad_length";
        return false;
    }
    auto key = keys_.find(header.key_id);
    if (key == keys_.end()) {
        reason = "unknown_key";
        return false;
    }
    if (encrypt_ && (header.flags & kFlagEncrypted) == 0) {
        reason =
            "not_encrypted";  // this node requires encryption: refuse plain datagrams, even authentic ones
        return false;
    }
    const auto nonce = nonce_of(header);
    const auto* bytes = reinterpret_cast<const unsigned char*>(datagram.data());
    const unsigned char* tag = bytes + kHeaderSize + header.length;
    int rc = 0;
    if (header.flags & kFlagEncrypted) {
        payload.resize(std::max<std::size_t>(header.length, 1));  // never a null output pointer
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            reinterpret_cast<unsigned char*>(payload.data()), nullptr, bytes + kHeaderSize, header.length,
            tag, bytes, kHeaderSize, nonce.data(), key->second.data());
    } else {
        unsigned char none[1] = {0};
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(none, nullptr, none, 0, tag, bytes,
                                                                 kHeaderSize + header.length, nonce.data(),
                                                                 key->second.data());
        if (rc == 0) {
            payload.assign(datagram.begin() + kHeaderSize, datagram.begin() + kHeaderSize + header.length);
        }
    }
    payload.resize(rc == 0 ? header.length : 0);
    if (rc != 0) {
        reason = "bad_tag";
        return false;
    }
    return true;
}

bool ReplayWindow::accept(std::uint64_t packet) {
    if (packet == 0) {
        return false;  // packet numbers start at 1
    }
    auto bit = [this](std::uint64_t p) -> std::uint64_t& { return bits_[(p / 64) % (kSize / 64)]; };
    auto mask = [](std::uint64_t p) { return std::uint64_t{1} << (p % 64); };
    if (packet > top_) {
        // Slide: clear every slot between the old top and the new one (all of them after a big jump).
        std::uint64_t gap = packet - top_;
        if (gap >= kSize) {
            bits_.fill(0);
        } else {
            for (std::uint64_t p = top_ + 1; p <= packet; ++p) {
                bit(p) &= ~mask(p);
            }
        }
        top_ = packet;
        bit(packet) |= mask(packet);
        return true;
    }
    if (top_ - packet >= kSize) {
        return false;  // older than the window: cannot tell, so refuse
    }
    if (bit(packet) & mask(packet)) {
        return false;
    }
    bit(packet) |= mask(packet);
    return true;
}

}  // namespace ctsync::core::wire

// SPDX-License-Identifier: GPL-2.0-or-later
// Big-endian byte writer and bounds-checked reader for the wire protocol (docs/PROTOCOL.md). The reader never
// throws and never reads past its span: the first short read clears ok() and every later read returns zero,
// so a decoder checks ok() once at the end of a record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace ctsync::core::wire {

class Writer {
  public:
    explicit Writer(std::vector<std::byte>& out) : out_(out) {}
    void u8(std::uint8_t v) { out_.push_back(static_cast<std::byte>(v)); }
    void u16(std::uint16_t v) {
        u8(static_cast<std::uint8_t>(v >> 8));
        u8(static_cast<std::uint8_t>(v));
    }
    void u32(std::uint32_t v) {
        u16(static_cast<std::uint16_t>(v >> 16));
        u16(static_cast<std::uint16_t>(v));
    }
    void u64(std::uint64_t v) {
        u32(static_cast<std::uint32_t>(v >> 32));
        u32(static_cast<std::uint32_t>(v));
    }
    void bytes(const void* data, std::size_t n) {
        const auto* p = static_cast<const std::byte*>(data);
        out_.insert(out_.end(), p, p + n);
    }
    std::size_t size() const { return out_.size(); }
    // Overwrites a u16 written earlier at `offset` (record lengths are known only after the body).
    void patch_u16(std::size_t offset, std::uint16_t v) {
        out_[offset] = static_cast<std::byte>(v >> 8);
        out_[offset + 1] = static_cast<std::byte>(v);
    }

  private:
    std::vector<std::byte>& out_;
};

class Reader {
  public:
    explicit Reader(std::span<const std::byte> in) : in_(in) {}
    bool ok() const { return ok_; }
    std::size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
    bool at_end() const { return ok_ && pos_ == in_.size(); }
    void fail() { ok_ = false; }
    std::uint8_t u8() {
        if (!take(1)) {
            return 0;
        }
        return static_cast<std::uint8_t>(in_[pos_ - 1]);
    }
    std::uint16_t u16() {
        std::uint16_t hi = u8();
        return static_cast<std::uint16_t>((hi << 8) | u8());
    }
    std::uint32_t u32() {
        std::uint32_t hi = u16();
        return (hi << 16) | u16();
    }
    std::uint64_t u64() {
        std::uint64_t hi = u32();
        return (hi << 32) | u32();
    }
    bool bytes(void* out, std::size_t n) {
        if (!take(n)) {
            std::memset(out, 0, n);
            return false;
        }
        std::memcpy(out, in_.data() + pos_ - n, n);
        return true;
    }
    // A sub-reader over the next `n` bytes (consumed here); an empty failed reader when they are missing.
    Reader sub(std::size_t n) {
        if (!take(n)) {
            Reader r({});
            r.fail();
            return r;
        }
        return Reader(in_.subspan(pos_ - n, n));
    }

  private:
    bool take(std::size_t n) {
        if (!ok_ || in_.size() - pos_ < n) {
            ok_ = false;
            return false;
        }
        pos_ += n;
        return true;
    }
    std::span<const std::byte> in_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

}  // namespace ctsync::core::wire

// SPDX-License-Identifier: GPL-2.0-or-later
#include "keepalived_adapter.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <set>
#include <utility>

namespace ha_keepalived {

namespace asio = boost::asio;
using ctsync::sdk::LogLevel;
using ctsync::sdk::Role;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReadBytes = 4096;
// 16 reads of 4 KiB drain a default pipe (64 KiB) in one wake-up; more waits for the next turn of the loop.
constexpr int kReadsPerWakeup = 16;
constexpr int kGarbageLogBurst = 10;
constexpr auto kGarbageLogWindow = std::chrono::seconds(1);
constexpr mode_t kFifoMode = 0600;
constexpr mode_t kTrackFileMode = 0644;

std::string log_quote(std::string_view text) {
    return "\"" + escape_for_log(text, 512) + "\"";
}

const char* file_kind(mode_t mode) {
    if (S_ISREG(mode)) {
        return "a regular file";
    }
    if (S_ISDIR(mode)) {
        return "a directory";
    }
    if (S_ISLNK(mode)) {
        return "a symbolic link";
    }
    if (S_ISSOCK(mode)) {
        return "a socket";
    }
    if (S_ISCHR(mode)) {
        return "a character device";
    }
    if (S_ISBLK(mode)) {
        return "a block device";
    }
    return "not a FIFO";
}

std::string not_a_fifo(const std::string& path, mode_t mode) {
    if (S_ISLNK(mode)) {
        return fmt::format(
            "{} is a symbolic link; keepalived opens its notify FIFO without following links (O_NOFOLLOW): "
            "give the FIFO's own path",
            path);
    }
    return fmt::format("{} is {}, not a FIFO: refusing to read it (remove it, or point fifo at another path)",
                       path, file_kind(mode));
}

// mkfifo, then chmod: the mode must not depend on the daemon's umask.
bool make_fifo(const std::string& path, std::string& error) {
    if (::mkfifo(path.c_str(), kFifoMode) != 0) {
        const int e = errno;
        error = fmt::format("cannot create the FIFO {}: {}{}", path, std::strerror(e),
                            e == ENOENT ? " (its directory does not exist)" : "");
        return false;
    }
    if (::chmod(path.c_str(), kFifoMode) != 0) {
        error = fmt::format("cannot set mode 0600 on the FIFO {}: {}", path, std::strerror(errno));
        return false;
    }
    return true;
}

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) {
        if (!out.empty()) {
            out += ',';
        }
        out += name;
    }
    return out;
}

const char* lower(ctsync::sdk::Role role) {
    switch (role) {
        case Role::kInit:
            return "init";
        case Role::kBackup:
            return "backup";
        case Role::kPrimary:
            return "primary";
        case Role::kFault:
            return "fault";
    }
    return "unknown";
}

const char* kind_of(EntityType type) {
    return type == EntityType::kGroup ? "group" : "instance";
}

// Runs a handler body so that nothing escapes into the host's event loop.
template <class Body>
void guarded(ctsync::sdk::Logger& log, const char* where, Body&& body) noexcept {
    try {
        body();
    } catch (const std::exception& e) {
        try {
            log.error(fmt::format("event=internal_error where={} reason={}", where, log_quote(e.what())));
        } catch (...) {
            log.error("event=internal_error");
        }
    } catch (...) {
        log.error("event=internal_error");
    }
}

void check_names(const std::vector<std::string>& names, const char* key, ctsync::sdk::ConfigErrors& errors) {
    std::set<std::string> seen;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string path = fmt::format(".{}[{}]", key, i);
        const std::string& name = names[i];
        if (name.empty()) {
            errors.push_back({path, "must not be empty"});
            continue;
        }
        bool bad = false;
        for (char c : name) {
            const auto byte = static_cast<unsigned char>(c);
            if (byte < 0x20 || byte == 0x7f || c == '"') {
                bad = true;
            }
        }
        if (bad) {
            errors.push_back({path, fmt::format("'{}' cannot be a keepalived name: no control characters or "
                                                "double quotes",
                                                escape_for_log(name, 64))});
            continue;
        }
        if (!seen.insert(name).second) {
            errors.push_back({path, fmt::format("'{}' is listed twice", name)});
        }
    }
}

}  // namespace

// --- configuration -----------------------------------------------------------------------------------------

void validate_options(const AdapterOptions& options, ctsync::sdk::ConfigErrors& errors) {
    if (options.instances.empty() && options.groups.empty()) {
        errors.push_back({".instances",
                          "no instance and no group: name at least one keepalived vrrp_instance here or one "
                          "vrrp_sync_group in groups; the role comes from their states"});
    }
    check_names(options.instances, "instances", errors);
    check_names(options.groups, "groups", errors);
    if (std::filesystem::path(options.fifo).filename().empty()) {
        errors.push_back({".fifo", fmt::format("'{}' names a directory, not a file", options.fifo)});
    }
    if (!options.track_file.empty()) {
        if (std::filesystem::path(options.track_file).filename().empty()) {
            errors.push_back(
                {".track_file", fmt::format("'{}' names a directory, not a file", options.track_file)});
        } else if (options.track_file == options.fifo) {
            errors.push_back({".track_file", "is the same path as fifo"});
        }
    }
    if (options.hold_value == options.ready_value) {
        errors.push_back({".hold_value", fmt::format("equals ready_value ({}): holding would not change the "
                                                     "priority",
                                                     options.ready_value)});
    }
    if (options.weight_by_sequence) {
        if (options.track_file.empty()) {
            errors.push_back({".weight_by_sequence", "needs track_file: the bonus is written there"});
        }
        const int highest = options.ready_value + options.sequence_bonus_max;
        if (highest > kMaxAddedPriority) {
            errors.push_back(
                {".sequence_bonus_max",
                 fmt::format(
                     "ready_value + sequence_bonus_max is {}: keepalived adds a track file's value to "
                     "the priority only within [-253, 253]",
                     highest)});
        }
    }
}

int track_value(const AdapterOptions& options, const ctsync::sdk::SyncReadiness& readiness,
                ctsync::sdk::Role role) noexcept {
    if (!readiness.table_complete) {
        return options.hold_value;
    }
    if (!options.weight_by_sequence) {
        return options.ready_value;
    }
    if (role == Role::kPrimary) {
        return options.ready_value + options.sequence_bonus_max;
    }
    const auto span = static_cast<std::uint64_t>(options.sequence_bonus_max) + 1;
    return options.ready_value + static_cast<int>(readiness.last_sequence % span);
}

// --- VRRP states -------------------------------------------------------------------------------------------

VrrpStates::VrrpStates(const std::vector<std::string>& instances, const std::vector<std::string>& groups) {
    for (const auto& name : instances) {
        entities_.push_back({EntityType::kInstance, name, std::nullopt, -1});
    }
    for (const auto& name : groups) {
        entities_.push_back({EntityType::kGroup, name, std::nullopt, -1});
    }
}

VrrpStates::Outcome VrrpStates::apply(const VrrpNotice& notice) {
    Outcome out;
    Entity* entity = nullptr;
    for (auto& e : entities_) {
        if (e.type == notice.type && e.name == notice.name) {
            entity = &e;
            break;
        }
    }
    if (entity == nullptr) {
        return out;
    }
    out.configured = true;
    out.previous = entity->state;
    entity->priority = notice.priority;
    std::optional<NotifyState> next = entity->state;
    switch (notice.state) {
        case NotifyState::kMaster:
        case NotifyState::kBackup:
        case NotifyState::kFault:
        case NotifyState::kStop:
        case NotifyState::kDeleted:
            next = notice.state;
            break;
        case NotifyState::kMasterRxLowerPri:
        case NotifyState::kMasterPriority:
            // keepalived sends these only while the instance is MASTER.
            if (entity->state != NotifyState::kMaster) {
                next = NotifyState::kMaster;
                out.inferred = true;
                out.contradicted = entity->state.has_value();
            }
            break;
        case NotifyState::kBackupPriority:
            // Sent in every state but MASTER: it says "not MASTER", which FAULT, STOP, DELETED and BACKUP
            // are.
            if (!entity->state || *entity->state == NotifyState::kMaster) {
                next = NotifyState::kBackup;
                out.inferred = true;
                out.contradicted = entity->state.has_value();
            }
            break;
    }
    out.changed = next != entity->state;
    entity->state = next;
    out.current = next;
    return out;
}

ctsync::sdk::Role VrrpStates::role() const noexcept {
    bool any_known = false;
    bool any_fault = false;
    bool all_master = true;
    for (const auto& e : entities_) {
        if (!e.state) {
            all_master = false;
            continue;
        }
        any_known = true;
        if (*e.state == NotifyState::kFault) {
            any_fault = true;
        }
        if (*e.state != NotifyState::kMaster) {
            all_master = false;
        }
    }
    if (!any_known) {
        return Role::kInit;
    }
    if (any_fault) {
        return Role::kFault;
    }
    return all_master ? Role::kPrimary : Role::kBackup;
}

bool VrrpStates::split() const noexcept {
    bool any_master = false;
    bool any_other = false;
    for (const auto& e : entities_) {
        if (e.state == NotifyState::kFault) {
            return false;
        }
        if (e.state == NotifyState::kMaster) {
            any_master = true;
        } else {
            any_other = true;
        }
    }
    return any_master && any_other;
}

std::string VrrpStates::describe() const {
    std::string out;
    for (const auto& e : entities_) {
        if (!out.empty()) {
            out += ", ";
        }
        out +=
            fmt::format("{} {} {}", kind_of(e.type), e.name, e.state ? to_string(*e.state) : "(no line yet)");
    }
    return out;
}

// --- the adapter -------------------------------------------------------------------------------------------

KeepalivedAdapter::KeepalivedAdapter(const ctsync::sdk::PluginContext& context, AdapterOptions options)
    : context_(context),
      options_(std::move(options)),
      log_(*context.logger),
      states_(options_.instances, options_.groups),
      fifo_(context.executor),
      check_timer_(context.executor),
      track_timer_(context.executor),
      lines_read_(context.metrics->counter("lines_read",
                                           "lines read from the FIFO, garbage and ignored ones included")),
      lines_garbage_(context.metrics->counter(
          "lines_garbage",
          "lines that are not keepalived notifications: unparsable, over 4096 bytes, binary, cut off")),
      lines_ignored_(context.metrics->counter(
          "lines_ignored",
          "well-formed lines about instances or groups not configured, and LVS checker lines")),
      role_changes_(context.metrics->counter("role_changes", "roles reported to the core")),
      fifo_reopens_(context.metrics->counter(
          "fifo_reopens", "times the FIFO was opened again: its writer closed it, or it was replaced")),
      track_writes_(context.metrics->counter("track_writes", "values written to track_file")),
      track_write_errors_(context.metrics->counter(
          "track_write_errors",
          "failed writes of track_file (retried every second; keepalived keeps the old value)")),
      role_gauge_(context.metrics->gauge("role", "role last reported: 0 INIT, 1 BACKUP, 2 PRIMARY, 3 FAULT")),
      fifo_open_gauge_(context.metrics->gauge("fifo_open", "1 while the FIFO is open for reading, else 0")),
      track_value_gauge_(context.metrics->gauge("track_value", "value last written to track_file")) {
    role_gauge_.set(static_cast<std::int64_t>(Role::kInit));
    fifo_open_gauge_.set(0);
}

KeepalivedAdapter::~KeepalivedAdapter() {
    stop();
}

bool KeepalivedAdapter::start(ctsync::sdk::RoleSink& sink, std::string& error) noexcept {
    try {
        if (stopped_) {
            error = "ha-keepalived: start() after stop()";
            return false;
        }
        if (started_) {
            error = "ha-keepalived: already started";
            return false;
        }
        sink_ = &sink;
        struct stat st {};
        if (::lstat(options_.fifo.c_str(), &st) == 0) {
            if (!S_ISFIFO(st.st_mode)) {
                error = "fifo: " + not_a_fifo(options_.fifo, st.st_mode);
                return false;
            }
        } else if (errno != ENOENT) {
            error = fmt::format("fifo: cannot inspect {}: {}", options_.fifo, std::strerror(errno));
            return false;
        } else if (options_.create_fifo) {
            if (!make_fifo(options_.fifo, error)) {
                error = "fifo: " + error;
                return false;
            }
            log_.info(fmt::format("event=fifo_created fifo={} mode=0600", log_quote(options_.fifo)));
        } else {
            // keepalived could not create it there either: a typo, not something to wait for.
            const auto directory = std::filesystem::path(options_.fifo).parent_path();
            struct stat dir {};
            if (::stat(directory.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode)) {
                error =
                    fmt::format("fifo: the directory {} does not exist, so keepalived cannot create {} there",
                                directory.string(), options_.fifo);
                return false;
            }
        }
        if (::lstat(options_.fifo.c_str(), &st) == 0) {
            std::string why;
            if (!open_fifo(why)) {
                error = "fifo: " + why;
                return false;
            }
            opened_once_ = true;
        } else {
            log_.warn(
                fmt::format("event=fifo_missing fifo={} action=\"waiting for keepalived to create it "
                            "(checked every {} ms)\"",
                            log_quote(options_.fifo), options_.reopen_interval.count()));
            missing_logged_ = true;
        }
        started_ = true;
        if (!options_.track_file.empty()) {
            const int value = track_value(options_, readiness_, role_);
            std::string why;
            if (!write_track_value(value, readiness_.table_complete, why)) {
                started_ = false;
                close_fifo();
                error = "track_file: " + why;
                return false;
            }
            log_.info(fmt::format("event=track_file_written track_file={} value={} state={}",
                                  log_quote(options_.track_file), value,
                                  readiness_.table_complete ? "ready" : "hold"));
        }
        arm_check_timer();
        log_.info(fmt::format(
            "event=ha_started fifo={} fifo_open={} instances={} groups={} track_file={} hold_value={} "
            "ready_value={} weight_by_sequence={} reopen_ms={}",
            log_quote(options_.fifo), fifo_.is_open(), log_quote(join(options_.instances)),
            log_quote(join(options_.groups)), log_quote(options_.track_file), options_.hold_value,
            options_.ready_value, options_.weight_by_sequence, options_.reopen_interval.count()));
        return true;
    } catch (const std::exception& e) {
        started_ = false;
        close_fifo();
        error = std::string("ha-keepalived: ") + e.what();
        return false;
    }
}

void KeepalivedAdapter::stop() noexcept {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    guarded(log_, "stop", [&] {
        ++check_generation_;
        ++track_generation_;
        check_timer_.cancel();
        track_timer_.cancel();
        close_fifo();
        if (!started_) {
            return;
        }
        if (!options_.track_file.empty() && track_written_ != options_.hold_value) {
            std::string error;
            if (write_track_value(options_.hold_value, false, error)) {
                log_.info(
                    fmt::format("event=track_file_written track_file={} value={} state=hold "
                                "reason=\"ctsyncd stops: this node is not a candidate without it\"",
                                log_quote(options_.track_file), options_.hold_value));
            } else {
                track_write_errors_.add();
                log_.error(fmt::format("event=track_file_write_failed track_file={} value={} reason={}",
                                       log_quote(options_.track_file), options_.hold_value,
                                       log_quote(error)));
            }
        }
        log_.info(fmt::format("event=ha_stopped fifo={} lines={} role={}", log_quote(options_.fifo),
                              line_number_, ctsync::sdk::to_string(role_)));
    });
}

void KeepalivedAdapter::update_readiness(const ctsync::sdk::SyncReadiness& readiness) noexcept {
    guarded(log_, "update_readiness", [&] {
        const bool flipped = readiness.table_complete != readiness_.table_complete;
        readiness_ = readiness;
        if (flipped) {
            log_.info(fmt::format("event=readiness table_complete={} last_sequence={}",
                                  readiness.table_complete, readiness.last_sequence));
        }
        refresh_track();
    });
}

// --- the FIFO ----------------------------------------------------------------------------------------------

bool KeepalivedAdapter::open_fifo(std::string& error) {
    // Read-only, without a write end of our own: when keepalived closes its end we see end-of-file and
    // know it (a dummy writer would hide that). Linux reports no hang-up on a FIFO opened while it has no
    // writer until a writer came and went, so an idle FIFO does not wake the loop.
    const int fd = ::open(options_.fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        const int e = errno;
        if (e == ELOOP) {
            error = not_a_fifo(options_.fifo, S_IFLNK);
        } else {
            error = fmt::format("cannot open {} for reading: {}", options_.fifo, std::strerror(e));
        }
        return false;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
        ::close(fd);
        error = not_a_fifo(options_.fifo, st.st_mode);
        return false;
    }
    boost::system::error_code ec;
    fifo_.assign(fd, ec);
    if (ec) {
        ::close(fd);
        error = fmt::format("cannot watch {}: {}", options_.fifo, ec.message());
        return false;
    }
    ++fifo_generation_;
    fifo_device_ = st.st_dev;
    fifo_inode_ = st.st_ino;
    pending_.clear();
    discarding_ = false;
    path_gone_logged_ = false;
    fifo_open_gauge_.set(1);
    wait_fifo();
    return true;
}

void KeepalivedAdapter::close_fifo() noexcept {
    ++fifo_generation_;
    if (fifo_.is_open()) {
        boost::system::error_code ignored;
        fifo_.close(ignored);
    }
    fifo_open_gauge_.set(0);
    pending_.clear();
    discarding_ = false;
    discarded_bytes_ = 0;
    discarded_head_.clear();
}

void KeepalivedAdapter::wait_fifo() {
    if (stopped_ || !fifo_.is_open()) {
        return;
    }
    std::weak_ptr<int> alive = alive_;
    const auto generation = fifo_generation_;
    fifo_.async_wait(asio::posix::stream_descriptor::wait_read,
                     [this, alive, generation](const boost::system::error_code& ec) {
                         if (alive.expired() || stopped_ || generation != fifo_generation_) {
                             return;
                         }
                         guarded(log_, "fifo_wait", [&] {
                             if (ec) {
                                 on_read_error(ec.value());
                                 return;
                             }
                             on_readable();
                         });
                     });
}

void KeepalivedAdapter::on_readable() {
    switch (read_lines(kReadsPerWakeup)) {
        case ReadResult::kWouldBlock:
            wait_fifo();
            return;
        case ReadResult::kEndOfFile:
            on_writer_closed();
            return;
        case ReadResult::kBudgetSpent: {
            // More is waiting: let other handlers run first.
            std::weak_ptr<int> alive = alive_;
            const auto generation = fifo_generation_;
            asio::post(context_.executor, [this, alive, generation] {
                if (alive.expired() || stopped_ || generation != fifo_generation_) {
                    return;
                }
                guarded(log_, "fifo_read", [&] { on_readable(); });
            });
            return;
        }
        case ReadResult::kFailed:
        case ReadResult::kGone:
            return;
    }
}

KeepalivedAdapter::ReadResult KeepalivedAdapter::read_lines(int max_reads) {
    std::weak_ptr<int> alive = alive_;
    const auto generation = fifo_generation_;
    char buffer[kReadBytes];
    for (int i = 0; i < max_reads; ++i) {
        const ssize_t n = ::read(fifo_.native_handle(), buffer, sizeof(buffer));
        if (n > 0) {
            consume(buffer, static_cast<std::size_t>(n));
            // A line may have reached the sink, which may have stopped (or destroyed) this adapter.
            if (alive.expired() || stopped_ || generation != fifo_generation_) {
                return ReadResult::kGone;
            }
            continue;
        }
        if (n == 0) {
            return ReadResult::kEndOfFile;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return ReadResult::kWouldBlock;
        }
        on_read_error(errno);
        return ReadResult::kFailed;
    }
    return ReadResult::kBudgetSpent;
}

void KeepalivedAdapter::consume(const char* data, std::size_t size) {
    std::weak_ptr<int> alive = alive_;
    const auto generation = fifo_generation_;
    std::size_t at = 0;
    while (at < size) {
        const void* newline = std::memchr(data + at, '\n', size - at);
        const std::size_t end =
            newline != nullptr ? static_cast<std::size_t>(static_cast<const char*>(newline) - data) : size;
        const std::size_t piece = end - at;
        if (discarding_) {
            discarded_bytes_ += piece;
        } else if (pending_.size() + piece > kMaxLineBytes) {
            // Over-long: keep only its head for the log and skip the rest up to the next newline.
            discarding_ = true;
            discarded_bytes_ = pending_.size() + piece;
            discarded_head_ = pending_.substr(0, 160);
            if (discarded_head_.size() < 160) {
                discarded_head_.append(data + at, std::min(piece, 160 - discarded_head_.size()));
            }
            pending_.clear();
        } else {
            pending_.append(data + at, piece);
        }
        if (newline == nullptr) {
            return;
        }
        at = end + 1;
        if (discarding_) {
            ++line_number_;
            lines_read_.add();
            handle_garbage(discarded_head_,
                           fmt::format("longer than {} bytes ({} bytes)", kMaxLineBytes, discarded_bytes_));
            discarding_ = false;
            discarded_bytes_ = 0;
            discarded_head_.clear();
            continue;
        }
        std::string line;
        line.swap(pending_);
        handle_line(line);
        if (alive.expired() || stopped_ || generation != fifo_generation_) {
            return;
        }
    }
}

void KeepalivedAdapter::handle_line(std::string_view line) {
    ++line_number_;
    lines_read_.add();
    const ParsedLine parsed = parse_notify_line(line);
    switch (parsed.kind) {
        case LineKind::kGarbage:
            handle_garbage(line, parsed.error);
            return;
        case LineKind::kLvs:
            lines_ignored_.add();
            if (log_.enabled(LogLevel::kDebug)) {
                log_.debug(fmt::format("event=line_ignored line={} reason=\"a checker (LVS) line\" text={}",
                                       line_number_, log_quote(line)));
            }
            return;
        case LineKind::kVrrp:
            apply(parsed.notice, line);
            return;
    }
}

void KeepalivedAdapter::handle_garbage(std::string_view text, const std::string& reason) {
    lines_garbage_.add();
    const auto now = Clock::now();
    if (now - garbage_window_ >= kGarbageLogWindow) {
        garbage_window_ = now;
        garbage_logged_in_window_ = 0;
    }
    if (garbage_logged_in_window_ >= kGarbageLogBurst) {
        ++garbage_suppressed_;
        return;
    }
    ++garbage_logged_in_window_;
    log_.warn(fmt::format("event=garbage_line fifo={} line={} reason={} text=\"{}\" suppressed={}",
                          log_quote(options_.fifo), line_number_, log_quote(reason), escape_for_log(text),
                          std::exchange(garbage_suppressed_, 0)));
}

void KeepalivedAdapter::apply(const VrrpNotice& notice, std::string_view line) {
    const auto outcome = states_.apply(notice);
    const char* kind = kind_of(notice.type);
    if (!outcome.configured) {
        lines_ignored_.add();
        if (log_.enabled(LogLevel::kDebug)) {
            log_.debug(fmt::format("event=line_ignored line={} reason=\"{} '{}' is not configured\" text={}",
                                   line_number_, kind, escape_for_log(notice.name, 64), log_quote(line)));
        }
        return;
    }
    const std::string name = log_quote(notice.name);
    if (is_priority_event(notice.state)) {
        if (log_.enabled(LogLevel::kDebug)) {
            log_.debug(fmt::format("event=vrrp_priority {}={} notice={} priority={} line={}", kind, name,
                                   to_string(notice.state), notice.priority, line_number_));
        }
    } else {
        log_.info(fmt::format("event=vrrp_state {}={} state={} priority={} line={}", kind, name,
                              to_string(notice.state), notice.priority, line_number_));
    }
    if (outcome.inferred) {
        const std::string message = fmt::format(
            "event=vrrp_state_inferred {}={} previous={} state={} from={} line={}", kind, name,
            outcome.previous ? to_string(*outcome.previous) : "unknown",
            outcome.current ? to_string(*outcome.current) : "unknown", to_string(notice.state), line_number_);
        if (outcome.contradicted) {
            log_.warn(message +
                      " reason=\"keepalived's priority event contradicts the last state line: a line "
                      "was lost; keepalived is believed\"");
        } else {
            log_.info(message);
        }
    }
    if (notice.state == NotifyState::kDeleted) {
        log_.warn(fmt::format(
            "event=vrrp_deleted {}={} hint=\"a reload removed it from keepalived's configuration: this node "
            "cannot be primary until it is restored or removed from ha-keepalived's {}s\"",
            kind, name, kind));
    }
    if (outcome.changed && states_.split()) {
        log_.warn(fmt::format(
            "event=vrrp_split states=\"{}\" role=BACKUP hint=\"primary needs every listed instance and group "
            "MASTER: put the instances in one vrrp_sync_group and list the group in groups\"",
            escape_for_log(states_.describe(), 1024)));
    }
    report_role(line);
}

void KeepalivedAdapter::report_role(std::string_view line) {
    const Role now = states_.role();
    if (now == Role::kInit || now == role_) {
        return;
    }
    const Role before = role_;
    role_ = now;
    role_changes_.add();
    role_gauge_.set(static_cast<std::int64_t>(now));
    std::string_view trimmed = line;
    while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t' || trimmed.back() == '\r')) {
        trimmed.remove_suffix(1);
    }
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) {
        trimmed.remove_prefix(1);
    }
    const std::string states = states_.describe();
    log_.info(fmt::format("event=role_change from={} to={} line={} cause={} states={}", lower(before),
                          lower(now), line_number_, log_quote(trimmed), log_quote(states)));
    // The weighted track value depends on the role: written before the sink runs (it may stop us).
    refresh_track();
    sink_->on_role(now, fmt::format("keepalived: {} ({})", trimmed, states));
}

void KeepalivedAdapter::on_writer_closed() {
    if (discarding_ || !pending_.empty()) {
        ++line_number_;
        lines_read_.add();
        const std::size_t bytes = discarding_ ? discarded_bytes_ : pending_.size();
        handle_garbage(
            discarding_ ? discarded_head_ : pending_,
            fmt::format("cut off: the writer closed the FIFO after {} bytes without a newline", bytes));
    }
    log_.info(
        fmt::format("event=fifo_writer_closed fifo={} lines={} action=\"reopen in {} ms\" "
                    "hint=\"keepalived stopped, restarted or reloaded\"",
                    log_quote(options_.fifo), line_number_, options_.reopen_interval.count()));
    close_fifo();
    arm_check_timer();
}

void KeepalivedAdapter::on_read_error(int error_number) {
    log_.error(fmt::format("event=fifo_read_failed fifo={} reason={} action=\"reopen in {} ms\"",
                           log_quote(options_.fifo), log_quote(std::strerror(error_number)),
                           options_.reopen_interval.count()));
    close_fifo();
    arm_check_timer();
}

// --- reopening and watching the path ----------------------------------------------------------------------

void KeepalivedAdapter::arm_check_timer() {
    if (stopped_) {
        return;
    }
    std::weak_ptr<int> alive = alive_;
    const auto generation = ++check_generation_;
    check_timer_.expires_after(options_.reopen_interval);
    check_timer_.async_wait([this, alive, generation](const boost::system::error_code& ec) {
        if (ec || alive.expired() || stopped_ || generation != check_generation_) {
            return;
        }
        guarded(log_, "check_timer", [&] { on_check_timer(); });
    });
}

void KeepalivedAdapter::on_check_timer() {
    std::weak_ptr<int> alive = alive_;
    if (fifo_.is_open()) {
        check_path();
    } else {
        try_reopen();
    }
    if (alive.expired() || stopped_) {
        return;
    }
    arm_check_timer();
}

void KeepalivedAdapter::try_reopen() {
    struct stat st {};
    if (::lstat(options_.fifo.c_str(), &st) != 0) {
        const int e = errno;
        if (e == ENOENT && options_.create_fifo) {
            std::string error;
            if (!make_fifo(options_.fifo, error)) {
                if (!refused_logged_) {
                    log_.error(fmt::format(
                        "event=fifo_create_failed fifo={} reason={} action=\"retry every {} ms\"",
                        log_quote(options_.fifo), log_quote(error), options_.reopen_interval.count()));
                    refused_logged_ = true;
                }
                return;
            }
            log_.info(fmt::format("event=fifo_created fifo={} mode=0600", log_quote(options_.fifo)));
        } else if (e == ENOENT) {
            if (!missing_logged_) {
                log_.warn(
                    fmt::format("event=fifo_missing fifo={} action=\"waiting for keepalived to create it "
                                "(checked every {} ms)\"",
                                log_quote(options_.fifo), options_.reopen_interval.count()));
                missing_logged_ = true;
            }
            return;
        } else {
            if (!refused_logged_) {
                log_.error(fmt::format(
                    "event=fifo_open_failed fifo={} reason={} action=\"retry every {} ms\"",
                    log_quote(options_.fifo), log_quote(std::strerror(e)), options_.reopen_interval.count()));
                refused_logged_ = true;
            }
            return;
        }
    } else if (!S_ISFIFO(st.st_mode)) {
        if (!refused_logged_) {
            log_.error(
                fmt::format("event=fifo_refused fifo={} reason={} action=\"waiting for a FIFO at this path\"",
                            log_quote(options_.fifo), log_quote(not_a_fifo(options_.fifo, st.st_mode))));
            refused_logged_ = true;
        }
        return;
    }
    std::string error;
    if (!open_fifo(error)) {
        if (!refused_logged_) {
            log_.error(fmt::format("event=fifo_open_failed fifo={} reason={} action=\"retry every {} ms\"",
                                   log_quote(options_.fifo), log_quote(error),
                                   options_.reopen_interval.count()));
            refused_logged_ = true;
        }
        return;
    }
    missing_logged_ = false;
    refused_logged_ = false;
    if (opened_once_) {
        fifo_reopens_.add();
        log_.info(fmt::format("event=fifo_reopened fifo={} reopens={}", log_quote(options_.fifo),
                              fifo_reopens_.value()));
    } else {
        log_.info(fmt::format("event=fifo_opened fifo={}", log_quote(options_.fifo)));
    }
    opened_once_ = true;
}

void KeepalivedAdapter::check_path() {
    struct stat st {};
    if (::lstat(options_.fifo.c_str(), &st) != 0) {
        // keepalived unlinks a FIFO it created itself just before it closes it: the end-of-file follows.
        // Until then (or if someone else removed it) the open FIFO is still where its writer writes.
        if (errno == ENOENT && !path_gone_logged_) {
            log_.warn(
                fmt::format("event=fifo_path_removed fifo={} action=\"reading on from the open FIFO until "
                            "its writer closes it\"",
                            log_quote(options_.fifo)));
            path_gone_logged_ = true;
        }
        return;
    }
    if (!S_ISFIFO(st.st_mode)) {
        if (!path_gone_logged_) {
            log_.warn(
                fmt::format("event=fifo_path_replaced fifo={} reason={} action=\"reading on from the open "
                            "FIFO until its writer closes it\"",
                            log_quote(options_.fifo), log_quote(not_a_fifo(options_.fifo, st.st_mode))));
            path_gone_logged_ = true;
        }
        return;
    }
    if (st.st_dev == fifo_device_ && st.st_ino == fifo_inode_) {
        return;
    }
    // Another FIFO at the path: keepalived recreated the one it made (reload, restart). The next writer
    // writes there; what the old one still holds is read first.
    log_.info(fmt::format("event=fifo_replaced fifo={} action=\"read what is left, then open the new FIFO\"",
                          log_quote(options_.fifo)));
    std::weak_ptr<int> alive = alive_;
    const auto result = read_lines(kReadsPerWakeup);
    if (alive.expired() || stopped_ || result == ReadResult::kGone || result == ReadResult::kFailed) {
        return;
    }
    if (discarding_ || !pending_.empty()) {
        ++line_number_;
        lines_read_.add();
        handle_garbage(discarding_ ? discarded_head_ : pending_,
                       "cut off: the FIFO was replaced in the middle of a line");
    }
    close_fifo();
    try_reopen();
}

// --- the track file ---------------------------------------------------------------------------------------

void KeepalivedAdapter::refresh_track() {
    if (options_.track_file.empty() || !started_ || stopped_) {
        return;
    }
    const int want = track_value(options_, readiness_, role_);
    if (track_written_ == want && !track_failing_) {
        return;
    }
    const auto now = Clock::now();
    const bool bonus_only = options_.weight_by_sequence && track_written_.has_value() &&
                            track_written_complete_ && readiness_.table_complete;
    if (bonus_only && now < track_written_at_ + kBonusRewriteInterval) {
        arm_track_timer(track_written_at_ + kBonusRewriteInterval);
        return;
    }
    const bool was_complete = track_written_complete_;
    std::string error;
    if (write_track_value(want, readiness_.table_complete, error)) {
        if (track_failing_) {
            log_.info(
                fmt::format("event=track_file_recovered track_file={}", log_quote(options_.track_file)));
            track_failing_ = false;
        }
        const std::string message =
            fmt::format("event=track_file_written track_file={} value={} state={} last_sequence={} role={}",
                        log_quote(options_.track_file), want, readiness_.table_complete ? "ready" : "hold",
                        readiness_.last_sequence, lower(role_));
        if (bonus_only && was_complete) {
            log_.debug(message);
        } else {
            log_.info(message);
        }
        return;
    }
    track_write_errors_.add();
    if (!track_failing_) {
        log_.error(
            fmt::format("event=track_file_write_failed track_file={} value={} reason={} action=\"retry every "
                        "{} ms; keepalived keeps the previous value\"",
                        log_quote(options_.track_file), want, log_quote(error), kTrackRetryInterval.count()));
        track_failing_ = true;
    }
    arm_track_timer(now + kTrackRetryInterval);
}

bool KeepalivedAdapter::write_track_value(int value, bool complete, std::string& error) {
    // keepalived watches the directory for IN_CLOSE_WRITE and IN_MOVED_TO of the file's name and reads the
    // file whole: a rename makes sure it never reads a half-written number (nor an empty file, which it
    // would take as 0). Not fsynced: ctsyncd writes the file again when it starts.
    const std::filesystem::path target(options_.track_file);
    const std::filesystem::path temporary =
        target.parent_path() / ("." + target.filename().string() + ".ctsync-tmp");
    const int fd =
        ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, kTrackFileMode);
    if (fd < 0) {
        const int e = errno;
        error = fmt::format("cannot create {}: {}{}", temporary.string(), std::strerror(e),
                            e == ENOENT ? " (the directory does not exist)" : "");
        return false;
    }
    auto fail = [&](const char* what) {
        error = fmt::format("cannot {} {}: {}", what, temporary.string(), std::strerror(errno));
        ::close(fd);
        ::unlink(temporary.c_str());
        return false;
    };
    if (::fchmod(fd, kTrackFileMode) != 0) {
        return fail("set mode 0644 on");
    }
    const std::string text = fmt::format("{}\n", value);
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail("write");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) {
        error = fmt::format("cannot write {}: {}", temporary.string(), std::strerror(errno));
        ::unlink(temporary.c_str());
        return false;
    }
    if (::rename(temporary.c_str(), target.c_str()) != 0) {
        error = fmt::format("cannot rename {} to {}: {}", temporary.string(), target.string(),
                            std::strerror(errno));
        ::unlink(temporary.c_str());
        return false;
    }
    track_written_ = value;
    track_written_complete_ = complete;
    track_written_at_ = Clock::now();
    track_writes_.add();
    track_value_gauge_.set(value);
    return true;
}

void KeepalivedAdapter::arm_track_timer(Clock::time_point when) {
    if (track_timer_armed_ || stopped_) {
        return;
    }
    track_timer_armed_ = true;
    std::weak_ptr<int> alive = alive_;
    const auto generation = ++track_generation_;
    track_timer_.expires_at(when);
    track_timer_.async_wait([this, alive, generation](const boost::system::error_code& ec) {
        if (ec || alive.expired() || stopped_ || generation != track_generation_) {
            return;
        }
        track_timer_armed_ = false;
        guarded(log_, "track_timer", [&] { refresh_track(); });
    });
}

}  // namespace ha_keepalived

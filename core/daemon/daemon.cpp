// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/daemon.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <ctsync/sdk/sdk.hpp>

#include "core/control/protocol.hpp"
#include "core/control/server.hpp"
#include "core/daemon/epoch_file.hpp"
#include "core/daemon/filter_chain.hpp"
#include "core/daemon/lock_file.hpp"
#include "core/daemon/plugin_host.hpp"
#include "core/daemon/service_notify.hpp"
#include "core/daemon/tables.hpp"
#include "core/failover/role_machine.hpp"
#include "core/failover/warm_standby.hpp"
#include "core/log/logging.hpp"
#include "core/metrics/http_endpoint.hpp"
#include "core/metrics/prometheus.hpp"
#include "core/metrics/registry.hpp"
#include "core/replication/engine.hpp"
#include "core/version.hpp"

namespace ctsync::core {
namespace {

// The network namespace this process runs in, as "net:[4026531840]" — lets an operator (and the tests)
// tell side-by-side instances apart.
std::string network_namespace() {
    std::error_code ec;
    auto target = std::filesystem::read_symlink("/proc/self/ns/net", ec);
    return ec ? std::string("unknown") : target.string();
}

nlohmann::json plugins_json(const PluginHost& host) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& instance : host.instances()) {
        const auto& d = *instance.slot.loaded->descriptor;
        list.push_back({{"instance", instance.slot.instance},
                        {"plugin", d.name},
                        {"category", sdk::to_string(d.category)},
                        {"version", d.version},
                        {"abi", fmt::format("{}.{}", d.abi_major, d.abi_minor)},
                        {"file", instance.slot.loaded->file.string()},
                        {"slot", instance.slot.path}});
    }
    return list;
}

// Tells the waiting parent of `ctsyncd -d` how start-up went, exactly once.
void report_ready(int& fd, const std::string& error) {
    if (fd < 0) {
        return;
    }
    std::string message = error.empty() ? "ok\n" : "error: " + error + "\n";
    [[maybe_unused]] auto n = ::write(fd, message.data(), message.size());
    ::close(fd);
    fd = -1;
}

}  // namespace

int run_daemon(DaemonConfig config, DaemonOptions options) {
    auto log = get_logger("ctsyncd");
    const auto started = std::chrono::steady_clock::now();

    LockFile lock;
    if (std::string error = lock.acquire(config.lock_file); !error.empty()) {
        log->error("event=start_failed reason=\"{}\"", error);
        report_ready(options.ready_fd, error);
        return 1;
    }

    boost::asio::io_context io;
    MetricsRegistry metrics;
    PluginHost host(io.get_executor(), metrics, config.node_id);
    if (std::string error = host.create_all(config.slots); !error.empty()) {
        log->error("event=start_failed reason=\"{}\"", error);
        report_ready(options.ready_fd, error);
        return host.refusal() == PluginHost::Refusal::kConfiguration ? kExitConfig : kExitPlugin;
    }
    for (const auto& instance : host.instances()) {
        const auto& d = *instance.slot.loaded->descriptor;
        log->info("event=plugin_created instance={} plugin={} category={} version={} file={}",
                  instance.slot.instance, d.name, sdk::to_string(d.category), d.version,
                  instance.slot.loaded->file.string());
    }

    sdk::Source* source = nullptr;
    std::vector<sdk::Filter*> filters;
    std::vector<FilterSlot> filter_slots;
    std::vector<std::pair<std::string, sdk::Transport*>> transports;
    std::vector<std::pair<std::string, sdk::HaAdapter*>> adapters;
    ProtoTable protos;
    std::uint32_t source_abi_minor = 0;
    for (const auto& instance : host.instances()) {
        if (auto* s = instance.as<sdk::Source>()) {
            source = s;
            source_abi_minor = instance.slot.loaded->descriptor->abi_minor;
        } else if (auto* f = instance.as<sdk::Filter>()) {
            filters.push_back(f);
            filter_slots.push_back({instance.slot.instance, instance.slot.loaded->descriptor->name, f,
                                    instance.slot.loaded->descriptor->abi_minor});
        } else if (auto* t = instance.as<sdk::Transport>()) {
            transports.emplace_back(instance.slot.instance, t);
        } else if (auto* h = instance.as<sdk::HaAdapter>()) {
            adapters.emplace_back(instance.slot.instance, h);
        } else if (auto* p = instance.as<sdk::ProtoHandler>()) {
            if (std::string error = protos.add(*p); !error.empty()) {
                log->error("event=start_failed reason=\"{}\"", error);
                report_ready(options.ready_fd, error);
                return 1;
            }
        }
    }
    HostLogger tables_log("ctsyncd");
    Tables tables(metrics, tables_log, source, filters);
    tables.set_protos(&protos);
    // Source::concurrent_writes exists from ABI 1.2 on: older sources are written on the loop only.
    tables.set_writes_off_loop(source != nullptr && source_abi_minor >= 2 && source->concurrent_writes());

    // Replication: only with transports; every datagram is authenticated with the configured keys.
    HostLogger replication_log("replication");
    std::unique_ptr<Engine> engine;
    if (!transports.empty()) {
        std::string error;
        auto keyring = wire::Keyring::load(config.keys, config.send_key_id, config.encrypt, error);
        if (!keyring) {
            log->error("event=start_failed reason=\"{}\"", error);
            report_ready(options.ready_fd, error);
            return 1;
        }
        // An epoch above every earlier run's, whatever the clock did meanwhile.
        const EpochChoice epoch = next_epoch(config.epoch_file, wall_clock_us());
        if (!epoch.warning.empty()) {
            log->warn("event=epoch_file_problem reason=\"{}\"", epoch.warning);
        }
        if (epoch.previous != 0 && epoch.epoch == epoch.previous + 1) {
            log->warn("event=clock_behind_previous_epoch previous={} epoch={} action=previous_plus_one",
                      epoch.previous, epoch.epoch);
        }
        EngineOptions replication = config.replication;
        replication.epoch = epoch.epoch;
        engine =
            std::make_unique<Engine>(io.get_executor(), replication, config.node_id, std::move(*keyring),
                                     tables.internal(), tables.external(), protos, metrics, replication_log);
        for (auto& [name, transport] : transports) {
            engine->add_link(name, *transport);
        }
        tables.internal().set_observer(engine.get());
        if (error = engine->start(); !error.empty()) {
            log->error("event=start_failed reason=\"{}\"", error);
            report_ready(options.ready_fd, error);
            return 1;
        }
    }
    if (std::string error = tables.start(); !error.empty()) {
        log->error("event=start_failed reason=\"{}\"", error);
        report_ready(options.ready_fd, error);
        return 1;
    }
    // The filters' kernel-side programs, chained, on the source's event socket (filter-bpf).
    FilterChain filter_chain(std::move(filter_slots));
    if (source != nullptr) {
        filter_chain.attach(*source, tables_log);
        filter_chain.count_kernel_drops(io.get_executor(), metrics, tables_log);
    }

    // Roles: warm standby writes what peers send into this kernel while this node is not primary.
    HostLogger failover_log("failover");
    std::unique_ptr<WarmStandby> standby;
    if (engine && source != nullptr && config.failover.warm_standby) {
        standby = std::make_unique<WarmStandby>(io.get_executor(), tables, config.failover.standby_batch,
                                                metrics, failover_log);
        tables.external().set_observer(standby.get());
    }
    RoleMachine roles(io.get_executor(), config.failover, tables, engine.get(), standby.get(),
                      config.replication.peer_timeout, metrics, failover_log);
    // An HA plugin decides the role; until it speaks the node is INIT and sends nothing. Without one the
    // config's initial_role holds (changed by `ctsyncctl role`).
    const sdk::Role initial = !adapters.empty()            ? sdk::Role::kInit
                              : !engine                    ? sdk::Role::kInit
                              : config.replication.sending ? sdk::Role::kPrimary
                                                           : sdk::Role::kBackup;
    roles.start(initial);
    for (auto& [name, adapter] : adapters) {
        roles.add_adapter(*adapter);
        std::string error;
        if (!adapter->start(roles, error)) {
            error = fmt::format("HA plugin '{}' refused to start: {}", name, error);
            log->error("event=start_failed reason=\"{}\"", error);
            report_ready(options.ready_fd, error);
            return 1;
        }
    }

    control::Server control(io, metrics);
    // A whole table travels in one `import` request.
    control.set_max_request_bytes(512u * 1024 * 1024);
    // A whole table: the heavy part off the event loop, so replication never waits on it.
    control.add_staged("dump", [&](nlohmann::json args) { return tables.dump_staged(args); });
    control.add_staged("import", [&](nlohmann::json args) { return tables.import_staged(std::move(args)); });
    control.add_staged("commit", [&](nlohmann::json args) { return tables.commit_staged(args); });
    control.add("flush", [&](const nlohmann::json& args) { return tables.flush(args); });
    control.add("resync", [&](const nlohmann::json& args) { return tables.resync(args); });
    control.add("version", [](const nlohmann::json&) {
        return nlohmann::json{{"version", kVersion},
                              {"abi", fmt::format("{}.{}", sdk::kAbiMajor, sdk::kAbiMinor)},
                              {"fingerprint", CTSYNC_SDK_BUILD_FINGERPRINT},
                              {"protocol", control::kProtocolVersion}};
    });
    control.add("status", [&](const nlohmann::json&) {
        auto uptime =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
        return nlohmann::json{{"node_id", config.node_id},
                              {"node_name", config.node_name},
                              {"pid", ::getpid()},
                              {"role", sdk::to_string(roles.role())},
                              {"failover", roles.status()},
                              {"uptime_s", uptime.count()},
                              {"network_namespace", network_namespace()},
                              {"config_file", config.source_file.string()},
                              {"lock_file", config.lock_file.string()},
                              {"control_socket", config.control_socket.string()},
                              {"plugins", host.instances().size()},
                              {"tables", tables.summary()},
                              {"replication", engine ? engine->status() : nlohmann::json()},
                              {"version", kVersion}};
    });
    control.add("stats", [&](const nlohmann::json&) {
        nlohmann::json out = nlohmann::json::array();
        tables.refresh_external_gauges();
        for (const auto& sample : metrics.snapshot()) {
            out.push_back({{"name", sample.name},
                           {"kind", sample.kind},
                           {"help", sample.help},
                           {"value", sample.value}});
        }
        return out;
    });
    control.add("plugins", [&](const nlohmann::json&) { return plugins_json(host); });
    control.add("filters", [&](const nlohmann::json&) { return filter_chain.status(); });
    auto require_engine = [&]() -> Engine& {
        if (!engine) {
            throw std::runtime_error("replication is not configured (no transports in the config)");
        }
        return *engine;
    };
    control.add("replication", [&](const nlohmann::json&) { return require_engine().status(); });
    control.add("request-bulk", [&](const nlohmann::json&) {
        require_engine().request_bulk_from_all();
        return nlohmann::json{{"requested", true}};
    });
    control.add("role", [&](const nlohmann::json& args) {
        const auto it = args.find("role");
        const std::string role = it != args.end() && it->is_string() ? it->get<std::string>() : "";
        if (role != "primary" && role != "backup" && role != "fault") {
            throw std::invalid_argument("\"role\" must be \"primary\", \"backup\" or \"fault\"");
        }
        const sdk::Role target = role == "primary"  ? sdk::Role::kPrimary
                                 : role == "backup" ? sdk::Role::kBackup
                                                    : sdk::Role::kFault;
        return roles.set_role(target, args.value("reason", std::string("ctsyncctl")));
    });
    control.add("send-bulk", [&](const nlohmann::json&) {
        require_engine().announce_table();
        return nlohmann::json{{"queued", true}};
    });
    if (std::string error = control.listen(config.control_socket); !error.empty()) {
        log->error("event=start_failed reason=\"{}\"", error);
        report_ready(options.ready_fd, error);
        return 1;
    }

    // The Prometheus endpoint (docs/METRICS.md).
    const PrometheusInfo prometheus_info{kVersion, config.node_id, config.node_name};
    auto prometheus_text = [&] {
        tables.refresh_external_gauges();
        return render_prometheus(metrics.snapshot(), prometheus_info);
    };
    MetricsEndpoint metrics_endpoint(io, metrics, prometheus_text);
    if (config.metrics_listen) {
        std::string error;
        auto endpoint = parse_listen_address(*config.metrics_listen, error);
        if (endpoint) {
            error = metrics_endpoint.listen(*endpoint);
        }
        if (!error.empty()) {
            log->error("event=start_failed reason=\"{}\"", error);
            report_ready(options.ready_fd, error);
            return 1;
        }
        log->info("event=metrics_listening address={}", *config.metrics_listen);
    }

    control.add("metrics", [&](const nlohmann::json&) {
        return nlohmann::json{{"content_type", kPrometheusContentType}, {"text", prometheus_text()}};
    });

    // systemd: READY=1 once the kernel table is dumped and, on a backup, the peers' tables are in (a node
    // keepalived put in FAULT has nothing to wait for); WATCHDOG=1 from this loop.
    ServiceNotifier notifier(
        io.get_executor(), metrics, *log,
        [&] {
            if (source != nullptr && !tables.internal_synced()) {
                return false;
            }
            return roles.role() == sdk::Role::kFault || roles.ready();
        },
        [&] {
            if (source != nullptr && !tables.internal_synced()) {
                return std::string("dumping the kernel's table");
            }
            const auto role = sdk::to_string(roles.role());
            if (roles.role() != sdk::Role::kFault && !roles.ready()) {
                return fmt::format("{}: receiving the peers' tables ({} flows so far)", role,
                                   tables.external().flow_count());
            }
            return fmt::format("{}: {} flows in the internal cache, {} in the external cache{}", role,
                               tables.internal().flow_count(), tables.external().flow_count(),
                               engine ? fmt::format(", {} live peers", engine->live_peers()) : std::string());
        });

    // SIGHUP reopens the log file (logrotate's postrotate), as most daemons do.
    boost::asio::signal_set hangup(io, SIGHUP);
    std::function<void()> wait_hangup = [&] {
        hangup.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec) {
                return;
            }
            if (std::string error = reopen_log(); !error.empty()) {
                log->error("event=log_reopen_failed reason=\"{}\"", error);
            } else {
                log->info("event=log_reopened");
            }
            wait_hangup();
        });
    };
    wait_hangup();

    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    auto shutdown = [&](const std::string& cause) {
        log->info("event=shutdown {}", cause);
        if (options.notify_systemd) {
            notifier.stop();
        }
        control.close();
        metrics_endpoint.close();
        hangup.cancel();
        signals.cancel();
        roles.stop();
        if (engine) {
            engine->stop();
            tables.internal().set_observer(nullptr);
        }
        tables.external().set_observer(nullptr);
        if (standby) {
            standby->stop();  // its writer thread uses the source: it ends before the plugins stop
        }
        host.stop_all();
        io.stop();
    };
    signals.async_wait([&](const boost::system::error_code& ec, int signal) {
        if (!ec) {
            shutdown(signal == SIGTERM ? "signal=SIGTERM" : "signal=SIGINT");
        }
    });
    // `ctsyncctl -k`: the reply goes out first, then the daemon stops as on SIGTERM.
    boost::asio::steady_timer shutdown_timer(io);
    control.add("shutdown", [&](const nlohmann::json&) {
        shutdown_timer.expires_after(std::chrono::milliseconds(100));
        shutdown_timer.async_wait([&](const boost::system::error_code& ec) {
            if (!ec) {
                shutdown("by=control");
            }
        });
        return nlohmann::json{{"stopping", true}};
    });

    log->info(
        "event=started node_id={} node_name={} pid={} plugins={} control_socket={} lock_file={} netns={}",
        config.node_id, config.node_name, ::getpid(), host.instances().size(), config.control_socket.string(),
        config.lock_file.string(), network_namespace());
    if (options.notify_systemd) {
        notifier.start();
    }
    report_ready(options.ready_fd, {});
    io.run();
    // The plugins were stopped: their cancelled operations still wait in the loop, and their handlers' code
    // lives in the plugins' libraries. Run them out now, while the libraries are loaded.
    io.restart();
    io.poll();
    log->info("event=stopped");
    return 0;
}

}  // namespace ctsync::core

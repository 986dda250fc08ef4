// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/control/protocol.hpp"

namespace ctsync::core::control {

std::optional<Request> parse_request(const std::string& line, std::string& error, std::size_t max_bytes) {
    if (line.size() > max_bytes) {
        error = "request longer than " + std::to_string(max_bytes) + " bytes";
        return std::nullopt;
    }
    nlohmann::json document = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) {
        error = "request is not valid JSON";
        return std::nullopt;
    }
    if (!document.is_object()) {
        error = "request must be a JSON object";
        return std::nullopt;
    }
    for (const auto& [key, value] : document.items()) {
        if (key != "command" && key != "args") {
            error = "unknown request key '" + key + "'";
            return std::nullopt;
        }
    }
    auto command = document.find("command");
    if (command == document.end() || !command->is_string() ||
        command->get_ref<const std::string&>().empty()) {
        error = "request needs a non-empty string \"command\"";
        return std::nullopt;
    }
    Request request;
    request.command = command->get<std::string>();
    if (auto args = document.find("args"); args != document.end()) {
        if (!args->is_object()) {
            error = "\"args\" must be an object";
            return std::nullopt;
        }
        request.args = *args;
    }
    return request;
}

std::string encode_request(const Request& request) {
    // A default-constructed json is null; the protocol wants an object.
    const nlohmann::json args = request.args.is_null() ? nlohmann::json::object() : request.args;
    return nlohmann::json{{"command", request.command}, {"args", args}}.dump() + "\n";
}

std::string encode_ok(const nlohmann::json& result) {
    return nlohmann::json{{"ok", true}, {"result", result}}.dump(-1, ' ', false,
                                                                 nlohmann::json::error_handler_t::replace) +
           "\n";
}

std::string encode_error(const std::string& message) {
    return nlohmann::json{{"ok", false}, {"error", message}}.dump(-1, ' ', false,
                                                                  nlohmann::json::error_handler_t::replace) +
           "\n";
}

}  // namespace ctsync::core::control

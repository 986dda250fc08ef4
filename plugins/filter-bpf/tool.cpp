// SPDX-License-Identifier: GPL-2.0-or-later
// ctsync-filter: the filter language at the command line. `check` parses an expression and says what the
// kernel decides and what the process decides; `compile` prints the classic BPF program (as `tcpdump -d`);
// `from-conntrackd` translates a conntrackd.conf Filter section into an expression.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bpf.hpp"
#include "conntrackd_filter.hpp"
#include "expr.hpp"

namespace {

int parse_or_report(const std::string& text, filter_bpf::NodePtr& out) {
    filter_bpf::ParseError error;
    auto root = filter_bpf::parse(text, error);
    if (!root) {
        std::cerr << "ctsync-filter: " << filter_bpf::format(error) << "\n  " << text << "\n  "
                  << std::string(error.column > 0 ? error.column - 1 : 0, ' ') << "^\n";
        return 1;
    }
    out = *root;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ctsync-filter: check, compile and translate filter-bpf expressions (docs/FILTERS.md)",
                 "ctsync-filter"};
    app.require_subcommand(1);
    std::string expression;
    auto* check =
        app.add_subcommand("check", "Parse an expression; print its canonical form and where it runs");
    check->add_option("expression", expression, "The expression")->required();
    auto* compile =
        app.add_subcommand("compile", "Print the kernel-side classic BPF program of an expression");
    compile->add_option("expression", expression, "The expression")->required();
    std::string conf;
    auto* convert = app.add_subcommand("from-conntrackd", "Translate conntrackd.conf's Filter section");
    convert->add_option("file", conf, "conntrackd.conf ('-' for standard input)")->required();
    CLI11_PARSE(app, argc, argv);

    if (convert->parsed()) {
        std::stringstream text;
        if (conf == "-") {
            text << std::cin.rdbuf();
        } else {
            std::ifstream in(conf);
            if (!in) {
                std::cerr << "ctsync-filter: cannot read " << conf << "\n";
                return 1;
            }
            text << in.rdbuf();
        }
        std::string out;
        std::string error;
        if (!filter_bpf::conntrackd_filter_expression(text.str(), out, error)) {
            std::cerr << "ctsync-filter: " << conf << ": " << error << "\n";
            return 1;
        }
        std::cout << out << "\n";
        return 0;
    }
    filter_bpf::NodePtr root;
    if (int rc = parse_or_report(expression, root); rc != 0) {
        return rc;
    }
    std::string why;
    const auto program = filter_bpf::compile(*root, why);
    if (compile->parsed()) {
        if (!program) {
            std::cerr << "ctsync-filter: no kernel program: " << why << " (the process evaluates it all)\n";
            return 1;
        }
        std::cout << filter_bpf::disassemble(*program);
        return 0;
    }
    const auto where = filter_bpf::placement(*root);
    std::cout << "canonical:   " << filter_bpf::to_string(*root) << "\n";
    if (!program) {
        std::cout << "kernel:      none (" << why << "): the process decides it all\n";
    } else {
        std::cout << "kernel:      " << program->size() << " instructions"
                  << (filter_bpf::kernel_exact(*root) ? ", the whole verdict"
                                                      : ", drops only what the atoms below decide")
                  << "\n";
    }
    for (const auto& a : where.in_kernel) {
        std::cout << "  kernel:    " << a << "\n";
    }
    for (const auto& a : where.in_process_only) {
        std::cout << "  process:   " << a << "\n";
    }
    std::cout << "process:     the whole expression, on every event the kernel lets through and on dumps\n";
    return 0;
}

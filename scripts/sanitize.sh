#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The robustness builds (tests/fuzz/README.md): everything built by clang under AddressSanitizer and
# UndefinedBehaviorSanitizer in a build tree of its own, the unit suite run there, then each libFuzzer target
# of tests/fuzz/ for a bounded time over its committed corpus. Any finding fails the script; a crashing
# input is kept under <build>/fuzz-artifacts/.
#
#   scripts/sanitize.sh [SECONDS_PER_TARGET]     (default 60; 0: the corpora once, no fuzzing)
#   CTSYNC_SAN_BUILD_DIR (default build-san)  CTSYNC_FUZZ_TARGETS="wire_decode config" (default: all)
# scripts/test.sh (the README's test command, CI) ends with it, 30 s per target.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root "$@"

seconds="${1:-60}"
[[ ${seconds} =~ ^[0-9]+$ ]] || die "seconds per target must be a whole number, got '${seconds}'"
build_dir="${CTSYNC_SAN_BUILD_DIR:-${CTSYNC_ROOT}/build-san}"
command -v clang++ >/dev/null || die "clang++ not found: run scripts/install-deps.sh"

# The unit test executables (label unit) and the fuzz targets, with what they run (plugins, daemon).
unit_targets=(ctsync_unit_tests ctsync_filter_bpf_tests ctsync_ha_keepalived_tests ctsync_proto_sctp_tests
              ctsync_proto_tcp_tests ctsync_proto_udp_tests ctsync_transport_tipc_tests)

step "configure the sanitizer build (${build_dir}: clang, address+undefined, libFuzzer)"
# -O1: what the sanitizers' documentation recommends; assertions stay on (no NDEBUG).
cmake -S "${CTSYNC_ROOT}" -B "${build_dir}" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DCMAKE_INSTALL_PREFIX=/usr \
    -DCTSYNC_BUILD_TESTS=ON -DCTSYNC_SANITIZE=address,undefined -DCTSYNC_FUZZ=ON >/dev/null
step "build the unit suite and the fuzz targets ($(nproc) jobs)"
cmake --build "${build_dir}" --parallel "$(nproc)" --target "${unit_targets[@]}" ctsync-fuzz

# halt_on_error: the first finding ends the process; detect_leaks: LeakSanitizer too.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

step "unit suite and fuzz corpora under ASan/UBSan"
ctest --test-dir "${build_dir}" --output-on-failure --parallel "$(nproc)" --timeout 600 -L '^(unit|fuzz)$'

if ((seconds == 0)); then
    exit 0
fi
read -r -a targets <<<"${CTSYNC_FUZZ_TARGETS:-wire_decode wire_receive config flow_json control keepalived_fifo netlink_codec filter_expression}"
artifacts="${build_dir}/fuzz-artifacts"
mkdir -p "${artifacts}"
for target in "${targets[@]}"; do
    seeds="${CTSYNC_ROOT}/tests/fuzz/corpus/${target}"
    [[ -d ${seeds} ]] || die "no corpus for fuzz target '${target}' (${seeds})"
    # New inputs go to a working corpus in the build tree; the committed seeds are only read.
    work="${build_dir}/fuzz-corpus/${target}"
    mkdir -p "${work}"
    dict=()
    [[ -f ${CTSYNC_ROOT}/tests/fuzz/${target}.dict ]] && dict=(-dict="${CTSYNC_ROOT}/tests/fuzz/${target}.dict")
    step "fuzz ${target} for ${seconds} s"
    log="${build_dir}/fuzz-${target}.log"
    if ! "${build_dir}/bin/ctsync-fuzz-${target}" -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="${artifacts}/${target}-" "${dict[@]}" "${work}" "${seeds}" \
        >"${log}" 2>&1; then
        tail -n 60 "${log}" >&2
        die "fuzz target ${target} found a problem: input and log under ${artifacts}/ and ${log}"
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "${log}" | tr '\n' ' '
    echo
done

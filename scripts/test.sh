#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The whole test suite from a fresh clone: installs every dependency (apt), checks formatting, builds with
# warnings as errors, and runs unit, process, network-namespace and SDK tests with ctest; then the unit suite
# again under ASan/UBSan (clang, its own build tree) and each libFuzzer target for a bounded time
# (scripts/sanitize.sh; CTSYNC_FUZZ_SECONDS per target, default 30; 0 runs only the corpora).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root "$@"

step "dependencies"
"${CTSYNC_ROOT}/scripts/install-deps.sh"
step "formatting"
"${CTSYNC_ROOT}/scripts/check-format.sh"
build
step "leftovers of earlier runs"
"${CTSYNC_ROOT}/scripts/lab-cleanup.sh"
step "tests"
ctest --test-dir "${CTSYNC_BUILD_DIR}" --output-on-failure --parallel "$(nproc)" --timeout 1200 "$@"
step "sanitizers and fuzzing"
"${CTSYNC_ROOT}/scripts/sanitize.sh" "${CTSYNC_FUZZ_SECONDS:-30}"

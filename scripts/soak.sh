#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The soak (issue 14; not part of the test suite: it takes half an hour). Three ctsyncd in network namespaces
# (a primary, two warm-standby backups, transport-mcast) under steady churn: RATE creates and RATE deletes
# per second on the primary's kernel table (a window of 50000 live entries), an exact convergence check every
# minute, RSS, resend queue and standby backlog sampled; it fails on any divergence or when a node's RSS
# leaves 5 % of the range it had during the warm-up (the first sixth). Samples go to a TSV file.
#
#   scripts/soak.sh [MINUTES] [RATE]     (default 30 10000; RATE a multiple of 1000 up to 50000)
#   CTSYNC_SOAK_OUT=path (default <build>/soak-<date>.tsv)
# Needs a build (scripts/build.sh or the test command); builds what changed first.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root "$@"

minutes="${1:-30}"
rate="${2:-10000}"
[[ ${minutes} =~ ^[0-9]+$ && ${minutes} -ge 2 ]] || die "MINUTES must be a whole number of at least 2, got '${minutes}'"
[[ ${rate} =~ ^[0-9]+$ && ${rate} -ge 1000 && ${rate} -le 50000 && $((rate % 1000)) -eq 0 ]] ||
    die "RATE must be a multiple of 1000 in 1000..50000, got '${rate}'"
[[ -f ${CTSYNC_BUILD_DIR}/build.ninja ]] || die "no build in ${CTSYNC_BUILD_DIR}: run scripts/build.sh first"
step "build what changed (${CTSYNC_BUILD_DIR})"
cmake --build "${CTSYNC_BUILD_DIR}" --parallel "$(nproc)" --target ctsync_soak
"${CTSYNC_ROOT}/scripts/lab-cleanup.sh"
out="${CTSYNC_SOAK_OUT:-${CTSYNC_BUILD_DIR}/soak-$(date -u +%Y%m%dT%H%M%SZ).tsv}"
step "soak: ${minutes} min at ${rate} creates/s and as many deletes; samples to ${out}"
CTSYNC_SOAK_MINUTES="${minutes}" CTSYNC_SOAK_RATE="${rate}" CTSYNC_SOAK_OUT="${out}" \
    timeout --signal=TERM --kill-after=30 "$(((minutes * 2 + 15) * 60))" "${CTSYNC_BUILD_DIR}/bin/ctsync_soak" || status=$?
"${CTSYNC_ROOT}/scripts/lab-cleanup.sh"  # what a timed-out run left behind
exit "${status:-0}"

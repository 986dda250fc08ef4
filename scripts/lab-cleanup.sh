#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Deletes network namespaces left by ctsync tests or demos whose creating process is gone
# (names "ctsync-t<pid>-..." and "ctsync-demo<pid>-..."). Never touches anything else.
set -euo pipefail
removed=0
while read -r name _; do
    [[ ${name} =~ ^ctsync-(t|demo)([0-9]+)- ]] || continue
    pid=${BASH_REMATCH[2]}
    if ! kill -0 "${pid}" 2>/dev/null; then
        ip netns del "${name}" && removed=$((removed + 1))
    fi
done < <(ip netns list 2>/dev/null)
echo "lab-cleanup: removed ${removed} stale namespace(s)"

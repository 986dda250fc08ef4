#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Deletes network namespaces left by ctsync tests, demos and labs whose creating process is gone
# (names "ctsync-t<pid>-...", "ctsync-demo<pid>-..." and the failover lab's "ctlab<pid>-..."), after ending
# the processes still running inside them (a lab's keepalived, ctsyncd and stream peers; `ip netns pids`,
# by PID). Never touches anything else.
set -euo pipefail
removed=0
while read -r name _; do
    [[ ${name} =~ ^(ctsync-(t|demo)|ctlab)([0-9]+)- ]] || continue
    pid=${BASH_REMATCH[3]}
    if ! kill -0 "${pid}" 2>/dev/null; then
        inside=$(ip netns pids "${name}" 2>/dev/null || true)
        if [[ -n ${inside} ]]; then
            for p in ${inside}; do kill -TERM "${p}" 2>/dev/null || true; done
            for _ in $(seq 50); do
                [[ -z $(ip netns pids "${name}" 2>/dev/null || true) ]] && break
                sleep 0.1
            done
            for p in $(ip netns pids "${name}" 2>/dev/null || true); do kill -KILL "${p}" 2>/dev/null || true; done
        fi
        ip netns del "${name}" && removed=$((removed + 1))
    fi
done < <(ip netns list 2>/dev/null)
echo "lab-cleanup: removed ${removed} stale namespace(s)"

# SPDX-License-Identifier: GPL-2.0-or-later
# Shared helpers for the project's scripts. Source it; do not run it.

CTSYNC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CTSYNC_BUILD_DIR="${CTSYNC_BUILD_DIR:-${CTSYNC_ROOT}/build}"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Re-runs the calling script as root (apt, namespaces and conntrack need it).
require_root() {
    if [[ ${EUID} -ne 0 ]]; then
        command -v sudo >/dev/null || die "run as root (sudo is not installed)"
        exec sudo --preserve-env=CTSYNC_BUILD_DIR,CI "$0" "$@"
    fi
}

build() {
    step "configure (${CTSYNC_BUILD_DIR})"
    # Prefix /usr: the distribution's layout, which the Debian packages (dist/) are built from.
    cmake -S "${CTSYNC_ROOT}" -B "${CTSYNC_BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_INSTALL_PREFIX=/usr -DCTSYNC_BUILD_TESTS=ON >/dev/null
    step "build ($(nproc) jobs)"
    cmake --build "${CTSYNC_BUILD_DIR}" --parallel "$(nproc)"
}

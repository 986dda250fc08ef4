#!/usr/bin/env bash
# Installs every package ctsync needs to build, test and run its demo on Debian 12, by name.
# Idempotent: re-running it only installs what is missing. Must run as root.
set -euo pipefail

if [[ ${EUID} -ne 0 ]]; then
    echo "install-deps: must run as root (apt-get install)" >&2
    exit 1
fi

# Build toolchain and libraries linked by ctsync.
build_packages=(
    build-essential g++ cmake ninja-build pkg-config clang-format git
    clang libclang-rt-14-dev  # the sanitizer and libFuzzer builds (scripts/sanitize.sh, tests/fuzz/)
    libboost-dev libboost-filesystem-dev libboost-system-dev
    libmnl-dev libnetfilter-conntrack-dev
    nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
    libsodium-dev libsystemd-dev
    libgtest-dev libgmock-dev googletest libbenchmark-dev
)
# Real peers and lab tools used by the kernel/netns tests, the benchmarks and the demo.
lab_packages=(
    iproute2 nftables conntrack conntrackd keepalived procps psmisc util-linux kmod iputils-ping
    faketime  # a node restarted with its clock set back (tests/core/replication/epoch_restart_netns_test.cpp)
    # The test VM (scripts/vm/vm-run.sh): qemu under TCG, busybox for its initramfs.
    qemu-system-x86 busybox-static
    gnuplot-nox  # the benchmarks' plots (bench/plot_transport_compare.gp)
    # The packaging tests (tests/dist/): lintian, systemd-analyze verify, groff for the man pages.
    lintian systemd groff-base
)

missing=()
for pkg in "${build_packages[@]}" "${lab_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("${pkg}")
    fi
done

# Debian's stock kernel for the test VM (TIPC, SCTP), unpacked into the VM cache rather than installed.
fetch_vm_kernel() {
    "$(dirname "$0")/vm/fetch-kernel.sh" >/dev/null
}

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#build_packages[@]}+${#lab_packages[@]} packages already installed"
    fetch_vm_kernel
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts daemons on install; the project runs its own instances in namespaces only.
for svc in conntrackd keepalived; do
    systemctl disable --now "${svc}" >/dev/null 2>&1 || true
done
fetch_vm_kernel
echo "install-deps: done"

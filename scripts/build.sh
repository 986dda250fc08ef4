#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Configures and builds ctsync into build/ (or $CTSYNC_BUILD_DIR). Assumes dependencies are installed
# (scripts/install-deps.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build

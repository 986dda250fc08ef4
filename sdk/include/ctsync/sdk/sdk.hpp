// SPDX-License-Identifier: GPL-2.0-or-later
// Umbrella header: everything a plugin needs.
#pragma once

#include "ctsync/sdk/abi.hpp"
#include "ctsync/sdk/config.hpp"
#include "ctsync/sdk/filter.hpp"
#include "ctsync/sdk/flow.hpp"
#include "ctsync/sdk/ha.hpp"
#include "ctsync/sdk/host.hpp"
#include "ctsync/sdk/plugin.hpp"
#include "ctsync/sdk/proto.hpp"
#include "ctsync/sdk/source.hpp"
#include "ctsync/sdk/transport.hpp"

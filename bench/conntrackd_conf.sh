# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
# The conntrackd configuration every measurement against conntrackd uses (the benchmarks and the failover
# lab's --sync conntrackd): FTFW over UDP, large socket and netlink buffers, overrun resync. Sourced.
#
# conntrackd_conf FILES LOCAL_IP PEER_IP DEV [warm]
#   prints the configuration; its log, lock file and socket are FILES.log, FILES.lock, FILES.sock; "warm" sets
#   DisableExternalCache On (the backup writes every entry into its kernel as it arrives).
conntrackd_conf() {
    cat <<CONF
Sync {
    Mode FTFW {
        DisableExternalCache $([[ ${5:-} == warm ]] && echo On || echo Off)
    }
    UDP {
        IPv4_address $2
        IPv4_Destination_Address $3
        Port 3780
        Interface $4
        SndSocketBuffer 24985600
        RcvSocketBuffer 24985600
        Checksum on
    }
}
General {
    HashSize 262144
    HashLimit 1048576
    LogFile $1.log
    Syslog off
    LockFile $1.lock
    UNIX {
        Path $1.sock
    }
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 268435456
    NetlinkOverrunResync on
}
CONF
}

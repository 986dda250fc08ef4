# SPDX-License-Identifier: GPL-2.0-or-later
# The transport comparison's plot (bench/transport_compare.sh writes the data and runs this):
#   gnuplot -e "data='plot.dat'; out='transport-comparison.png'; subtitle='...'" bench/plot_transport_compare.gp
# data: a row per transport, "label" then median, min and max of each metric in this order: throughput
# (entries/s), latency p50 (ms), latency p99 (ms), CPU per entry on the primary (µs), on a backup (µs),
# convergence under loss (ms), failure detection after SIGKILL, cable cut, interface down (ms); NaN when not
# measured. One panel per metric, a bar per transport (the median), error bars from min to max.
if (!exists("data")) data = 'plot.dat'
if (!exists("out")) out = 'transport-comparison.png'
if (!exists("subtitle")) subtitle = ''

set terminal pngcairo size 1500,1100 font "DejaVu Sans,10"
set output out
set datafile missing NaN

array titles[9] = ["throughput, entries/s (higher is better)", \
                   "replication latency p50, ms", \
                   "replication latency p99, ms", \
                   "CPU per entry, primary, µs", \
                   "CPU per entry, backup (warm standby), µs", \
                   "convergence under loss, ms", \
                   "failure detection: ctsyncd killed, ms", \
                   "failure detection: cable cut, ms", \
                   "failure detection: interface down, ms"]
array colours[3] = [0x3b6ea5, 0xd98b2b, 0x4c9a5a]

set multiplot layout 3,3 title "ctsync: transport-mcast, transport-tcp, transport-tipc (same VM, same load)\n{/*0.85 ".subtitle."}"
set style fill solid 0.85 border -1
set boxwidth 0.6
set grid ytics lc rgb "#dddddd"
set border 3
set xtics nomirror scale 0
set ytics nomirror
set key off
set xrange [-0.6:2.6]
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
do for [i=1:9] {
    c = 2 + 3 * (i - 1)
    set title titles[i]
    plot data using 0:c:(colours[int($0) % 3 + 1]):xtic(1) with boxes lc rgb variable, \
         '' using 0:(column(c + 1)):(0):(column(c + 2) - column(c + 1)) with vectors nohead lc rgb "black" lw 1, \
         '' using ($0 - 0.08):(column(c + 1)):(0.16):(0) with vectors nohead lc rgb "black" lw 1, \
         '' using ($0 - 0.08):(column(c + 2)):(0.16):(0) with vectors nohead lc rgb "black" lw 1, \
         '' using 0:(column(c + 2)):(sprintf(abs(column(c)) >= 100 ? "%.0f" : "%.1f", column(c))) with labels offset 0,0.8 font ",9", \
         '' using 0:(0):(column(c) == column(c) ? "" : "not measured") with labels offset 0,1 tc rgb "#aa0000"
}
unset multiplot

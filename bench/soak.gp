# Plots bench/soak.sh's CSV. Called as:
#   gnuplot -e "csv='soak.csv'; png='soak.png'; load_t0=5; load_end=1805; title='...'" bench/soak.gp
# Three panels over time (minutes): memory (RSS, pool pages), descriptors and connections,
# and what went wrong or was refused (cumulative counts; client errors on the right axis).
set datafile separator ','
set terminal pngcairo size 1200,1000 font ',10'
set output png
set multiplot layout 3,1 title title
set xlabel 'minutes'
set grid
set key top center
set arrow 1 from first load_t0/60.0, graph 0 to first load_t0/60.0, graph 1 nohead dt 2 lc rgb 'gray30'
set arrow 2 from first load_end/60.0, graph 0 to first load_end/60.0, graph 1 nohead dt 2 lc rgb 'gray30'
set label 1 'load' at first load_t0/60.0, graph 0.95 offset 0.5,0
set label 2 'clients gone' at first load_end/60.0, graph 0.95 offset 0.5,0

set ylabel 'MB'
set yrange [0:*]
plot csv using ($1/60.0):($3/1024.0) every ::1 with linespoints pt 7 ps 0.4 title 'RSS', \
     ''  using ($1/60.0):($9/1048576.0) every ::1 with lines title 'pool pages', \
     ''  using ($1/60.0):($10/1048576.0) every ::1 with lines title 'pool objects'

set ylabel 'count'
plot csv using ($1/60.0):4 every ::1 with linespoints pt 7 ps 0.4 title 'descriptors', \
     ''  using ($1/60.0):7 every ::1 with lines title 'TCP connections open', \
     ''  using ($1/60.0):8 every ::1 with lines title 'WebSocket sessions open', \
     ''  using ($1/60.0):5 every ::1 with lines title 'threads'

set ylabel 'cumulative'
set y2label 'client errors'
set y2tics
set logscale y
set yrange [1:*]
set y2range [0:*]
plot csv using ($1/60.0):($11+1) every ::1 with lines title 'refused requests/upgrades (+1)', \
     ''  using ($1/60.0):($12+1) every ::1 with lines title 'HTTP 4xx (+1)', \
     ''  using ($1/60.0):($14+1) every ::1 with lines title 'slow-consumer closes (+1)', \
     ''  using ($1/60.0):($15+1) every ::1 with lines title 'log lines suppressed (+1)', \
     ''  using ($1/60.0):18 every ::1 axes x1y2 with linespoints pt 7 ps 0.4 title 'client errors (right)'
unset multiplot

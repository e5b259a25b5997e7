"""Pure analysis: run records in, numbers, text, tables, figures and reports out.

    comparison.py  steady state, images/s, time to target, speedup, protocol, cores busy (the Definitions)
    flops.py       FLOPs per image from the layer shapes; achieved FLOP/s, peak, utilisation
    stats.py       a group's n, median, min, max, olympic mean, not reached; speedup of medians
    energy.py      joules per epoch and to target from NVML watts and RAPL joules; cost per hour
    display.py     how numbers and spreads are written: "—" for unknown, "median (min–max)"
    groups.py      which runs form a group and its cells, read back from config.json
    listing.py     one run as a row of `list` and the Runs page
    series.py      RunSeries: what a figure needs of one run; load_series from disk
    figures.py     per-run line charts (metrics, epoch time, throughput, system)
    grouping.py    groups as median lines in min-max bands, and their spread table
    scaling.py     samples/s against batch size and threads; GPU-over-CPU speedup; utilisation
    timesplit.py   where the time goes: a steady epoch's steps, first-step wait, evaluation, the rest
    tables.py      the comparison table (and its default columns), the per-epoch export, the run history
    verdict.py     the answer first: each run's (or group cell's) speedup and time to target, in words
    report.py      one self-contained HTML file of runs or groups

No I/O beyond reading run folders through the store, and no Streamlit: the
dashboard renders what these build, and `python -m training compare|report`
prints or writes the same.
"""

"""The benchmark harness (`python -m bench`, see bench/README.md): scenarios, open- and closed-loop load,
HDR histograms, peers measured in the same run, reports and plots.

May import: everything (transports/, actors/, wal/) to start and drive the real service; nothing in the
product imports it. Not part of the test suite's timing: tests assert behaviour, benchmarks report speed.
"""

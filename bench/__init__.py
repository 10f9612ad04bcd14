"""edgeroute benchmarks: `make bench` runs them all; results go to docs/benchmarks.md by hand,
with the machine and method, from one run where numbers are compared side by side."""

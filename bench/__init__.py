"""troupe's benchmarks. `make bench` (python -m bench) runs every module in this package
that defines `run() -> list[Figure]` and prints one table."""

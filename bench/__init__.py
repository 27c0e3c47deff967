"""GhostCache benchmarks: `make bench` (python -m bench)."""

"""Process-level helpers for CPU runs: what a script calls once at its start, not part of the model API."""

#!/usr/bin/env bash
# Create .venv with the CPU build of torch and emotions-hf (editable, with the dev extras).
# torch is pinned first so that pip never pulls a multi-GB CUDA build on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
# torch named again so that no dependency (gradio, playwright, ...) can swap the CPU build for another.
.venv/bin/python -m pip install -q -e ".[dev]" "torch==2.13.0"

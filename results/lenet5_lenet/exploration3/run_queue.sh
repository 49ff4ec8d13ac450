#!/bin/bash
# Exploration 3 (README here): Bayesian-stage variants from a cached `lenet-aug` pretraining of seed SEED.
#   DET=path/to/pretrain/model.keras TFQBNN_DATA_DIR=... ./run_queue.sh SEED '[{"name": ..., "bayesian": ..., ...}]'
# Rows are appended to $EXPLORE_ROOT/results.jsonl (default runs/exploration3 in the checkout).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
: "${DET:?set DET to the seed's pretrained model.keras (e.g. a lenet-aug sweep's _pretrain/*/model.keras)}"
PYTHONPATH=. .venv/bin/python results/lenet5_lenet/exploration2/explore2.py \
  "${EXPLORE_ROOT:-runs/exploration3}" aug2 '{"augment_shift": 2}' "$2" "$1" "$DET"

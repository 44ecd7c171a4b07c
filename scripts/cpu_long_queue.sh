#!/usr/bin/env bash
# The `cpu-long` runs behind the headline results (results/<dataset>/<method>/fold_<i>.json,
# results/monuseg-test-cpu-long/), in the order they are run. Every line can be stopped and
# started again at any time, on any machine: `crossval` skips the folds whose fold file
# exists and resumes an unfinished fold from its run folder's last.ckpt (SIGTERM or Ctrl-C
# keeps the last whole epoch), `holdout` skips a result file that exists.
#
# Run it from a clean checkout of one commit (the records name the commit; a `-dirty` tree
# is refused below), with PYTHON a Python that has the package's dependencies (the
# checkout's own src/ is put first on the path):
#
#     git worktree add ../cpu-long HEAD && cd ../cpu-long
#     PYTHON=../main/.venv/bin/python scripts/cpu_long_queue.sh
#
# then, from the main checkout, `scripts/land_results.sh ../cpu-long` copies the finished
# result files back, scores new TNBC fold-1 runs image by image and regenerates the report
# (`pseudoedgenet report results --out results/README.md --readme README.md`).
# On 2 AVX2 cores in fp32 a fold of baseline or fully_supervised takes ~2 h, one of pen_att
# ~4.5 h (the TNBC fold-1 records); on 2 AVX-512 cores in bf16 ~21 and ~50 min. A fresh
# machine keeps nothing of runs/ (only what is committed): a fold lands only if it finishes
# on the machine it started on, so land what finished before a session ends.
set -euo pipefail
DATA_SRC=${DATA_SRC:-../shared/data}
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
pe() {  # the pseudoedgenet command of this checkout
  "$PYTHON" -c "import sys; from pseudoedgenet.cli import main; sys.argv[0] = 'pseudoedgenet'; main()" "$@"
}

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "error: $PWD has uncommitted changes: run from a clean checkout (git worktree add)" >&2
  exit 2
fi
[ -f data/tnbc/dataset.json ] || pe prepare tnbc --src "$DATA_SRC/tnbc" --out data/tnbc
[ -f data/monuseg/dataset.json ] || pe prepare monuseg --src "$DATA_SRC/monuseg" --out data/monuseg
[ -f data/monuseg-test/dataset.json ] ||
  pe prepare monuseg --src "$DATA_SRC/monuseg" --split test --out data/monuseg-test

cv() { echo "=== $(date -u +%FT%TZ) crossval $*"; pe crossval --protocol cpu-long "$@"; }

# 1. TNBC folds 1-2 (fold 0 of baseline and pen_att exist)
for fold in 1 2; do
  for m in baseline pen_att fully_supervised; do cv --config "$m" --data data/tnbc --folds "$fold"; done
done
# (the TNBC fully_supervised fold 0 that ran from a -dirty tree was run again from a clean
# one, and its record replaced the committed one on 2026-12-03)
# 2. MoNuSeg folds 0-2, fold by fold: baseline and pen_att first, so that the fold-0 pair
# that Figure 2 is drawn from finishes on one machine (land_results.sh draws it while runs/
# still holds both) and every fold gives a paired difference as soon as it can; then
# fully_supervised of the same fold
for fold in 0 1 2; do
  for m in baseline pen_att fully_supervised; do cv --config "$m" --data data/monuseg --folds "$fold"; done
done
# 3. The MoNuSeg 2018 test set: train on the 30 training images, test the 14 test images
for m in baseline pen_att; do
  echo "=== $(date -u +%FT%TZ) holdout $m"
  pe holdout --config "$m" --train-data data/monuseg --test-data data/monuseg-test \
    --protocol cpu-long --dataset monuseg-test --out "results/monuseg-test-cpu-long/$m.json"
done
# 4. TNBC fold 0 of baseline and pen_att again (their committed files ran on AVX-512 cores in
# bf16 and kept no checkpoint): a second run of the same fold beside the committed one,
# whose checkpoints Figure 2 of TNBC is redrawn from (land_results.sh), before the optional
# rows below
for m in baseline pen_att; do
  cv --config "$m" --data data/tnbc --folds 0 --out "runs/rerun/tnbc/$m" --runs "runs/crossval/tnbc-rerun/$m"
done
# 5. pen (small g, no h) and densecrf, folds 0-2 on both datasets
for ds in tnbc monuseg; do
  for m in pen densecrf; do cv --config "$m" --data "data/$ds" --folds 0-2; done
done
echo "=== $(date -u +%FT%TZ) queue done"

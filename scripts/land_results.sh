#!/usr/bin/env bash
# Brings the result files that a campaign worktree (scripts/cpu_long_queue.sh) has finished
# into this checkout and regenerates the pages built from them; commits nothing.
#
#     scripts/land_results.sh ../cpu-long          # from the main checkout
#
# 1. draws Figure 2 of a dataset (results/figure2_<dataset>.png and its figures.json entry)
#    from the worktree's fold-0 checkpoints of pen_att and baseline when both runs finished
#    and the committed figure was not drawn from these files (a fresh machine keeps no
#    checkpoint, so the figure is drawn when its runs land); it refuses to draw in a checkout
#    with uncommitted changes to tracked files (the figure records the commit it is drawn at);
# 2. copies every result file the worktree's runs wrote (results/**/*.json that git does not
#    track there) that this checkout lacks; one that exists here with other content is
#    refused (a run's record is never replaced silently: reruns go to runs/rerun/ in the
#    worktree, and replacing a record is a decision to make by hand), and the records of
#    those reruns (runs/rerun/<dataset>/<method>/fold_<i>.json) as
#    results/repeats/<dataset>/<method>/fold_<i>.json (the report's "Repeat runs" section);
# 3. scores every newly landed TNBC fold-1 run image by image from its checkpoints
#    (docs/tnbc-fold1.md, results/tnbc-fold1/);
# 4. regenerates results/README.md, the README summary and docs/tnbc-fold1.md;
# 5. lists what landed (method, fold, test IoU, best epoch) for the commit message.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1/results" ] || ! git -C "$1" rev-parse --git-dir >/dev/null 2>&1; then
  echo "error: give the campaign worktree (a git checkout holding results/), e.g. ../cpu-long" >&2
  exit 2
fi
SRC=$1
PYTHON=${PYTHON:-.venv/bin/python}
DATA_SRC=${DATA_SRC:-../shared/data}
# Figure 2 first, while this checkout is clean (the figure records its commit)
drawn=0
declare -A title=([monuseg]=MoNuSeg [tnbc]=TNBC)
for runs in monuseg tnbc tnbc-rerun; do  # tnbc-rerun: the queue's second TNBC fold-0 runs
  ds=${runs%-rerun}
  pen="$SRC/runs/crossval/$runs/pen_att/fold_0/best.ckpt"
  base="$SRC/runs/crossval/$runs/baseline/fold_0/best.ckpt"
  records="$SRC/results/$ds"
  [ "$runs" = "$ds" ] || records="$SRC/runs/rerun/$ds"
  # both folds finished (a run still training has a best.ckpt too) and kept their checkpoints
  [ -f "$records/pen_att/fold_0.json" ] && [ -f "$records/baseline/fold_0.json" ] || continue
  [ -f "$pen" ] && [ -f "$base" ] || continue
  sha=$(sha256sum "$pen" | cut -d' ' -f1)
  if grep -q "$sha" results/figures.json 2>/dev/null; then continue; fi
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "error: this checkout has uncommitted changes: commit them first (Figure 2 of $ds records the commit it is drawn at)" >&2
    exit 2
  fi
  protocol=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['protocol'])" \
    "$records/pen_att/fold_0.json")
  "$PYTHON" -m pseudoedgenet figure2 --checkpoint "$pen" --baseline "$base" --data "$SRC/data/$ds" \
    --fold 0 --images 3 --title "${title[$ds]}, protocol \`$protocol\`" --out "results/figure2_$ds.png"
  drawn=1
done
landed=()
land() {  # land <file in the worktree> <path here>
  if [ -f "$2" ]; then
    if ! cmp -s "$1" "$2"; then
      echo "error: $2 exists here with other content: compare and replace it by hand" >&2
      exit 2
    fi
    return 0
  fi
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
  landed+=("$2")
}
while IFS= read -r rel; do
  land "$SRC/$rel" "$rel"
done < <(git -C "$SRC" ls-files --others --exclude-standard -- 'results/*.json' | sort)
# repeat runs of a fold (runs/rerun/<dataset>/<method>/fold_<i>.json) beside the first run
while IFS= read -r rel; do
  land "$SRC/$rel" "results/repeats/${rel#runs/rerun/}"
done < <(cd "$SRC" && find runs/rerun -path '*/*/*/fold_*.json' 2>/dev/null | sort)
score=()
for rel in ${landed[@]+"${landed[@]}"}; do
  case "$rel" in
    results/tnbc/*/fold_1.json)
      m=$(basename "$(dirname "$rel")")
      run="$SRC/runs/crossval/tnbc/$m/fold_1"
      if [ -f "$run/best.ckpt" ]; then score+=(--score "$run"); fi ;;
  esac
done
if [ ${#landed[@]} -eq 0 ] && [ $drawn -eq 0 ]; then
  echo "nothing new in $SRC/results"
  exit 0
fi
"$PYTHON" -m pseudoedgenet report results --out results/README.md --readme README.md
if ! "$PYTHON" -m pseudoedgenet.experiments.tnbc_fold1 --data "$DATA_SRC" --out docs \
  ${score[@]+"${score[@]}"}; then
  # the test suite compares docs/tnbc-fold1.md with the records: landed records without it fail CI
  echo "error: docs/tnbc-fold1.md was not regenerated (see above): fix that, rerun the line" \
    "'python -m pseudoedgenet.experiments.tnbc_fold1 --data $DATA_SRC --out docs', then commit" >&2
  exit 1
fi
"$PYTHON" - ${landed[@]+"${landed[@]}"} <<'EOF'
import json
import sys

for path in sys.argv[1:]:
    r = json.load(open(path, encoding="utf-8"))
    test = (r.get("test") or {}).get("iou")
    pts = (r.get("test_point_selected") or {}).get("iou")
    epochs = r.get("config", {}).get("train", {}).get("epochs")
    split = r.get("fold") is None  # a holdout record: trained on all, last epoch tested
    print(
        f"landed {path}: {r.get('dataset')} {r.get('method')} "
        + ("holdout" if split else f"fold {r.get('fold')}")
        + f" ({r.get('protocol')}, {r.get('device')}, {r.get('precision')}, "
        f"commit {str(r.get('git_commit'))[:7]}): test IoU "
        + (f"{test:.4f}" if test is not None else "–")
        + (f" (last epoch of {epochs})" if split else f" (epoch {r.get('best_epoch')}/{epochs})")
        + (f", {pts:.4f} by clicks (epoch {r.get('best_epoch_points')})" if pts is not None else "")
    )
EOF

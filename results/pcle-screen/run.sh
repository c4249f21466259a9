#!/usr/bin/env bash
# The PCLE screen of issue 21: short NW-UCLA runs (the CPU protocol at width 32, 4 epochs, 1 warm-up epoch),
# variants x seeds. The criterion is the validation split (never test) and contrastive_after leaving chance
# (ln 10 = 2.30) by epoch 2. Every run is scored with a rule fixed before training: logits + 1.0 * scale *
# similarity after interaction (model.inference=fusion, model.fuse_weight=1.0); the head alone is beside it.
# A variant is a file variants/NAME.txt: `method=...` then one `--set` override per line.
#   bash results/pcle-screen/run.sh "first coop hybrid" "0 1 2"    (resumable: finished runs are kept)
#   pcle runs results/pcle-screen --markdown
set -euo pipefail
cd "$(dirname "$0")/../.."
PCLE=${PCLE:-.venv/bin/pcle}
BASE=(--dataset nw-ucla --config configs/nw-ucla-cpu-fp32.yaml --set model.width=32 --set optim.epochs=4
      --set optim.warmup_epochs=1 --set run.eval_every=4 --set model.inference=fusion --set model.fuse_weight=1.0)
for v in $1; do
  mapfile -t lines < "results/pcle-screen/variants/$v.txt"
  method=${lines[0]#method=}
  sets=()
  for line in "${lines[@]:1}"; do sets+=(--set "$line"); done
  for s in $2; do
    out=results/pcle-screen/$v/seed$s
    if [ -f "$out/metrics.json" ]; then continue; fi
    if [ -f "$out/checkpoint.pt" ]; then
      "$PCLE" train --resume --out "$out" --no-progress
    else
      "$PCLE" train "${BASE[@]}" --method "$method" "${sets[@]}" --set run.seed="$s" --out "$out" --no-progress
    fi
  done
done

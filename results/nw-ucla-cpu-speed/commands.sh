cd "$(dirname "$0")/../.."  # the repository root
OUT=${1:-results/nw-ucla-cpu-speed}  # a later round writes to a folder of its own
mkdir -p $OUT
for row in gap pcle-hybrid; do
  # the folder labels of the committed rounds: nw-ucla-cpu = the fp32 twin, nw-ucla-cpu-fast = the CPU protocol (fast path)
  for cfg in nw-ucla-cpu nw-ucla-cpu-fast; do
    config=configs/nw-ucla-cpu.yaml; [ $cfg = nw-ucla-cpu ] && config=configs/nw-ucla-cpu-fp32.yaml
    if [ $row = gap ]; then
      .venv/bin/pcle train --dataset nw-ucla --method gap --config $config --epochs 2 --set run.eval_every=100 --out $OUT/$cfg-$row --no-progress > $OUT/$cfg-$row.log 2>&1
    else
      .venv/bin/pcle train --dataset nw-ucla --method pcle --config $config --epochs 2 --set run.eval_every=100 \
        --set "prompt.ctx_init=a person is" --set prompt.init_length=words --set prompt.pooling=name --set prompt.hybrid=true \
        --set prompt.hybrid_class_text=mean --set model.inference=fusion --set model.fuse_weight=1.0 --out $OUT/$cfg-$row --no-progress > $OUT/$cfg-$row.log 2>&1
    fi
    python3 -c "import json; m=json.load(open('$OUT/$cfg-$row/metrics.json')); print('$cfg $row', round(m['train_samples_per_s'],1))" >> $OUT/summary.txt
  done
done
echo DONE >> $OUT/summary.txt

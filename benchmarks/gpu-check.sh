#!/bin/bash
# One short run on a GPU machine: prove the CUDA path and run a training sweep, in one go.
#
#   benchmarks/gpu-check.sh OUT DATA [PLAN]
#
# OUT receives at most 8 files: checks.txt (machine, CUDA tests, detect on CUDA vs CPU, listen on CUDA),
# sweep.md / sweep.json / sweep.log, logs.tgz (every training and evaluation log) and the two best models.
# The sweep stops at $DEADLINE seconds (default 450) so everything comes back within a 10-minute call.
set -u
OUT=$1
DATA=$2
PLAN=${3:-benchmarks/gpu-sweep2.txt}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
work=$(mktemp -d)
mkdir -p "$OUT"

$PY benchmarks/sweep.py --plan "$PLAN" --data "$DATA" --out "$work/sweep" --mix "$work/mix" \
    --jobs "${JOBS:-6}" --device "${COMPUTE:-cuda}" --deadline "${DEADLINE:-450}" > "$OUT/sweep.log" 2>&1 &
sweep=$!

[ "${CHECKS:-1}" = 0 ] || {
  echo "## machine"; nvidia-smi -L; nproc
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  echo "## augmentation on CUDA equals the CPU's, draw for draw"
  $PY -m pytest -q -p no:cacheprovider tests/test_augment.py -k accelerator 2>&1 | tail -3
  echo "## detect samples/example.ogg, --compute cuda and cpu"
  for c in "${COMPUTE:-cuda}" cpu; do
    $PY -m barkwatch detect samples/example.ogg --compute "$c" --events "$work/detect-$c.jsonl" -q
    echo "exit $? ($c)"
  done
  $PY - "$work" <<'EOF'
import json, sys
from pathlib import Path
for f in sorted(Path(sys.argv[1]).glob("detect-*.jsonl")):
    barks = [e for e in map(json.loads, f.read_text().splitlines()) if e["event"] == "bark"]
    print(f.stem, len(barks), "barks:", [(e["offset_s"], e["end_offset_s"], e["peak_score"]) for e in barks])
EOF
  echo "## listen --device file:samples/example.ogg --compute cuda (40 s, then SIGINT)"
  timeout --preserve-status -s INT 40 $PY -m barkwatch listen --device file:samples/example.ogg --compute "${COMPUTE:-cuda}" \
      --events "$work/listen.jsonl" --no-clips --state-dir "$work/state" -v 2>&1 | tail -8
  echo "exit ${PIPESTATUS[0]}"; grep -c '"bark_start"' "$work/listen.jsonl"
  echo "## tests that score, train and export, with compute auto = cuda here"
  $PY -m pytest -q -p no:cacheprovider -n 3 tests/test_detect.py tests/test_engine.py tests/test_modelfile.py \
      tests/test_default_model.py tests/test_features.py tests/test_model.py tests/test_train_labels.py 2>&1 | tail -15
} > "$OUT/checks.txt" 2>&1

wait $sweep
echo "sweep exit $?" >> "$OUT/sweep.log"
cp "$work/sweep/sweep.md" "$work/sweep/sweep.json" "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$work/sweep" --exclude='*.pt' . 2>/dev/null
# the two recipes that found the most validation barks at <= 2 false alarms an hour
$PY - "$work/sweep" "$OUT" <<'EOF'
import json, shutil, sys
from pathlib import Path
sweep, out = Path(sys.argv[1]), Path(sys.argv[2])
results = json.loads((sweep / "sweep.json").read_text()) if (sweep / "sweep.json").exists() else {}
def key(item):
    r = item[1]
    return tuple((r.get(k) or {}).get("recall") or 0 for k in ("at_most_2_per_hour", "at_most_0.5_per_hour"))
for name, _ in sorted((i for i in results.items() if "error" not in i[1]), key=key, reverse=True)[:2]:
    model = sweep / f"{name}.pt"
    if model.stat().st_size < 16 * 2**20:
        shutil.copy(model, out / model.name)
EOF
ls -la "$OUT"

#!/usr/bin/env bash
# One-shot check of the course pack on a CUDA machine, run from the repository root:
#   bash scripts/gpu_check.sh            (results in ${OUT:-./gpu-results}, summary.txt last)
# Full budgets, not quick mode; MNIST downloads when the machine has network, else stand-in digits.
# Every step runs even if an earlier one failed; the exit status is non-zero if any step failed.
set -u
OUT="${OUT:-./gpu-results}"
PY="${PYTHON:-python}"
unset COURSEPACK_QUICK COURSEPACK_OFFLINE CI
export COURSEPACK_DATA="${COURSEPACK_DATA:-$PWD/data}"  # one MNIST download for every notebook
mkdir -p "$OUT/executed"
SUMMARY="$OUT/summary.txt"
echo "gpu_check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2> /dev/null || echo unknown)" | tee "$SUMMARY"
failed=0

step() {  # step NAME LOG COMMAND...: run COMMAND with its output in $OUT/LOG; record status and time
    local name=$1 log=$2 start=$SECONDS rc
    shift 2
    "$@" > "$OUT/$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || failed=1
    printf '%-34s %-9s %5ds  %s\n' "$name" "$([ "$rc" -eq 0 ] && echo pass || echo "FAIL($rc)")" \
        $((SECONDS - start)) "$log" | tee -a "$SUMMARY"
}

if ! "$PY" -c "import torch, nbval, pytest, nbgrader, matplotlib, sympy, tqdm" 2> /dev/null; then
    step "pip install -e .[dev]" pip-install.log "$PY" -m pip install -e '.[dev]'
fi
step "nvidia-smi" nvidia-smi.txt nvidia-smi
step "torch sees CUDA" torch-cuda.txt "$PY" -c \
    "import torch; print(torch.__version__, torch.version.cuda); print(torch.cuda.get_device_name(0))"
step "notebooks (pytest --nbval-lax)" pytest-notebooks.log "$PY" -m pytest -p no:cacheprovider \
    --nbval-lax notebooks/*.ipynb source/practical1/*.ipynb
for nb in notebooks/*.ipynb; do
    step "execute $(basename "$nb")" "executed/$(basename "$nb" .ipynb).log" "$PY" -m jupyter nbconvert \
        --to notebook --execute --ExecutePreprocessor.timeout=1800 --output-dir "$OUT/executed" "$nb"
done
step "bench --device cuda" bench-cuda.txt "$PY" -m coursepack.bench --device cuda --samples 10000 \
    --epochs 5 --json "$OUT/bench-cuda.json"
step "bench --device cpu" bench-cpu.txt "$PY" -m coursepack.bench --device cpu --json "$OUT/bench-cpu.json"

{
    echo
    echo "What the executed demos report (copies with outputs in $OUT/executed/):"
    for nb in "$OUT"/executed/*.ipynb; do
        [ -e "$nb" ] || continue
        "$PY" -c 'import sys, nbformat
name = sys.argv[1].split("/")[-1]
for cell in nbformat.read(sys.argv[1], 4).cells:
    for out in cell.get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith(("Trained for", "Final test accuracy")):
                print(f"  {name}: {line}")' "$nb"
    done
    echo
    echo "Benchmarks:"
    cat "$OUT/bench-cuda.txt" "$OUT/bench-cpu.txt" 2> /dev/null
    echo
    echo "overall: $([ "$failed" -eq 0 ] && echo pass || echo FAIL), ${SECONDS}s in all"
} >> "$SUMMARY"
cat "$SUMMARY"
exit "$failed"

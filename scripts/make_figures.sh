#!/usr/bin/env bash
# Make figures/ from the SYNTHETIC sample traces in traces/: run the demo and copy its figures.
#   bash scripts/make_figures.sh [OUT_DIR]      (default: figures/)
# The figures illustrate the report; they are not findings (the traces are synthetic, see traces/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-figures}
tracesafe=${TRACESAFE:-tracesafe}
command -v "$tracesafe" >/dev/null 2>&1 || tracesafe=.venv/bin/tracesafe
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tracesafe" demo -o "$work/demo" >/dev/null
mkdir -p "$out"
cp "$work"/demo/report/figures/*.png "$out"/
cat > "$out/README.md" <<'MD'
# figures/

Made by `scripts/make_figures.sh` from the **synthetic** sample traces in `traces/` with the offline
(screening-grade) harm judge and the refusal judge. They show what the report draws; they are not findings
about any model.

The harmful text in the sample traces is real: human-labelled harmful generations from HarmBench's classifier
validation set (MIT), on HarmBench behaviors the offline judge never trained on, placed in the thinking (behind a
refusal, or before a harmful answer) or in the answer. The judge is measured, not perfect: it misses some of that
text and flags a little of the rest (see its card in the README), so the panels show what the judge reads.

The report's sixth figure, the judge-agreement matrix, needs two harm judges on the same segments; the
embedded default has one (offline), so it is not drawn here. `tests/test_report.py` draws it from two judges.
MD
ls "$out"

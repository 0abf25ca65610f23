#!/bin/sh
# Regenerates the README's screens from a real recording, so they cannot go stale:
#   scripts/screens.sh            redraw assets/dashboard-160x50.{svg,txt} from the recording
#   scripts/screens.sh --record   first record a new run: Qwen2.5-Coder-0.5B, prompt-lookup
#                                 speculative decoding, the rewrite-lookup preset
# LABTUI names the binary (default: target/release/labtui, built if missing).
set -eu
cd "$(dirname "$0")/.."
rec=assets/screens/spec-0.5b.ron
bin=${LABTUI:-target/release/labtui}
if [ -z "${LABTUI:-}" ] && [ ! -x "$bin" ]; then
    cargo build --release --bin labtui
fi
if [ "${1:-}" = "--record" ]; then
    "$bin" generate --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --preset rewrite-lookup \
        --record "$rec" > /dev/null
fi
# The screen at the run's end (a time past it shows the end), and its text.
for out in assets/dashboard-160x50.svg assets/dashboard-160x50.txt; do
    "$bin" replay "$rec" --snapshot-at 3600 --size 160x50 --out "$out" 2>/dev/null
done
echo "wrote assets/dashboard-160x50.svg and .txt from $rec"

#!/bin/sh
# Regenerates the README's and docs' screens from real recordings, so they cannot go stale:
#   scripts/screens.sh            redraw the screens from the recordings in assets/screens
#   scripts/screens.sh --record   first record new runs on Qwen2.5-Coder-0.5B: a prompt-lookup
#                                 speculative run (the rewrite-lookup preset), and two A/B races
#                                 (as loaded against Q4_0; plain decoding against prompt lookup)
#   scripts/screens.sh --races    first record the two races only
#   scripts/screens.sh --server   first record a race of labtui's engine against llama-server
#                                 (LLAMA_CPP_BIN names its folder) on the same 0.5B, at once
# LABTUI names the binary (default: target/release/labtui, built if missing).
set -eu
cd "$(dirname "$0")/.."
rec=assets/screens/spec-0.5b.ron
bin=${LABTUI:-target/release/labtui}
model=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
if [ -z "${LABTUI:-}" ] && [ ! -x "$bin" ]; then
    cargo build --release --bin labtui
fi
rewrite='Rename the variable `acc` to `total` and return the code only:

fn sum(xs: &[i64]) -> i64 {
    let mut acc = 0;
    for x in xs {
        acc += x;
    }
    acc
}
'
if [ "${1:-}" = "--record" ]; then
    "$bin" generate --model "$model" --preset rewrite-lookup --record "$rec" > /dev/null
fi
if [ "${1:-}" = "--record" ] || [ "${1:-}" = "--races" ]; then
    # Each race also runs its sides alone: their speeds in the race over alone go to the .md.
    "$bin" race --model "$model" --b quant=q4_0 -n 128 --alone \
        -p "Write a Python function that checks whether a number is prime." \
        --record assets/screens/race-q4_0-0.5b.ron > assets/screens/race-q4_0-0.5b.md
    "$bin" race --model "$model" --b draft=prompt-lookup,k=4 -n 128 --alone -p "$rewrite" \
        --record assets/screens/race-lookup-0.5b.ron > assets/screens/race-lookup-0.5b.md
fi
if [ "${1:-}" = "--server" ]; then
    port=${PORT:-8093}
    "${LLAMA_CPP_BIN:?LLAMA_CPP_BIN names llama.cpp's folder}/llama-server" -m "models/$model" \
        --host 127.0.0.1 --port "$port" -c 4096 --metrics >/dev/null 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null' EXIT
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 1; done
    "$bin" race --model "$model" --b "endpoint=http://127.0.0.1:$port" -n 128 \
        -p "Write a Python function that checks whether a number is prime." \
        --record assets/screens/race-server-0.5b.ron > assets/screens/race-server-0.5b.md
    kill $server
fi
# The screen at the run's end (a time past it shows the end), and its text.
for out in assets/dashboard-160x50.svg assets/dashboard-160x50.txt; do
    "$bin" replay "$rec" --snapshot-at 3600 --size 160x50 --out "$out" 2>/dev/null
done
echo "wrote assets/dashboard-160x50.svg and .txt from $rec"
for race in race-q4_0-0.5b race-lookup-0.5b race-server-0.5b; do
    [ -f "assets/screens/$race.ron" ] || continue
    for ext in svg txt; do
        "$bin" replay "assets/screens/$race.ron" --snapshot-at 3600 --size 160x50 \
            --out "assets/screens/$race-160x50.$ext" 2>/dev/null
    done
    echo "wrote assets/screens/$race-160x50.svg and .txt"
done

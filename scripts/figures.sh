#!/bin/sh
# Regenerates every figure the docs quote, in one run on this machine, then inserts them into
# README.md and docs/ between their markers (tests/figures.rs checks they match):
#   scripts/figures.sh            the demos, the benchmarks and serving (about 50 minutes on 2 cores)
#   scripts/figures.sh --demos    the demos only (about 18 minutes)
#   scripts/figures.sh --serving  the serving section only (about 12 minutes)
#   scripts/figures.sh --profile  bench engine --profile on both Qwen files (about 3 minutes)
#   scripts/figures.sh --prefix   chat prompts sharing a preamble: labtui serve with its prefix
#                                 cache and without, against llama-server (about 8 minutes)
#   scripts/figures.sh --heads    draft heads: trains them on the 1.5B where models/ has none
#                                 (about 17 minutes a kind), then bench spec with every draft mode
#   scripts/figures.sh --sensitivity  the 0.5B's sensitivity map, mixes from it beside llama.cpp's
#                                 Q3_K_M and Q3_K_S of the same file, checked in llama.cpp
#                                 (about 20 minutes)
# LABTUI names the binary (default: target/release/labtui, built if missing); the models come
# from ./models (../shared/tools/fetch-models models); llama.cpp's tools from $LLAMA_CPP_BIN or
# ../shared/tools/llama-cpp. Every report starts with its stamp: machine, roofs, commit, date.
set -eu
cd "$(dirname "$0")/.."
bin=${LABTUI:-target/release/labtui}
if [ -z "${LABTUI:-}" ]; then
    cargo build --release --bin labtui
fi
m05=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
m15=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

only=${1:-}

# Waits for a server on port $1 to answer /v1/models.
wait_up() {
    tries=0
    until curl -sf "http://127.0.0.1:$1/v1/models" > /dev/null; do
        tries=$((tries + 1))
        [ $tries -lt 120 ] || { echo "the server on port $1 did not start" >&2; exit 1; }
        sleep 1
    done
}

# A fresh llama-server (or labtui serve) on port 18082, the 0.5B, until `stop`.
llama() {
    "$LLAMA_CPP_BIN/llama-server" -m "models/$m05" --host 127.0.0.1 --port 18082 --parallel 4 \
        -t 2 -c 8192 --metrics > /dev/null 2>&1 &
    srv=$!
    wait_up 18082
}
ours() {
    "$bin" serve --model "$m05" --port 18082 > /dev/null 2>&1 &
    srv=$!
    wait_up 18082
}
stop() {
    kill $srv 2>/dev/null
    wait $srv 2>/dev/null || true
}

# labtui serve and llama-server side by side on loopback, the same workload, both stopped after;
# then llama-server's prompt cache on a shared-prefix workload and with it busted, and a capacity
# search under one SLO against each server, every run on a fresh server.
serving() {
    mkdir -p assets/serve
    "$bin" serve --model "$m05" --port 18081 > /dev/null 2>&1 &
    ours=$!
    "$LLAMA_CPP_BIN/llama-server" -m "models/$m05" --host 127.0.0.1 --port 18082 --parallel 4 \
        -t 2 -c 4096 --metrics > /dev/null 2>&1 &
    theirs=$!
    trap 'kill $ours $theirs 2>/dev/null' EXIT
    wait_up 18081
    wait_up 18082
    "$bin" bench serve --endpoint http://127.0.0.1:18081 --endpoint http://127.0.0.1:18082 \
        --concurrency 1,4,16 --requests 16 --input-tokens 32:0 --max-tokens 16 --ignore-eos \
        --warmup 1 > assets/serve/labtui-vs-llama-0.5b.md
    kill $ours $theirs 2>/dev/null
    wait $ours $theirs 2>/dev/null || true
    trap 'stop' EXIT
    for bust in "" --cache-bust; do
        llama
        "$bin" bench serve --endpoint http://127.0.0.1:18082 --shared-prefix 512:4 $bust \
            --concurrency 1,2,4 --requests 16 --max-tokens 32 --warmup 0 \
            > "assets/serve/shared-prefix-llama${bust:+-busted}.md"
        stop
    done
    for server in ours llama; do
        $server
        "$bin" bench serve --endpoint http://127.0.0.1:18082 --capacity rate --rate 0.5 \
            --slo ttft=2000,tpot=150 --duration 20 --max-tokens 32 --warmup 1 \
            > "assets/serve/capacity-$server.md"
        stop
    done
    trap - EXIT
}

if [ -z "$only" ] || [ "$only" = "--demos" ]; then
    rm -rf assets/demos.new
    "$bin" demo all --headless --model "$m05" --out assets/demos.new > /dev/null
    rm -rf assets/demos
    mv assets/demos.new assets/demos
fi

if [ -z "$only" ] || [ "$only" = "--serving" ]; then
    LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-$(../shared/tools/llama-cpp)}
    export LLAMA_CPP_BIN
    serving
fi

# Chat requests that share a preamble (the template's system prompt and 80 more tokens), 24
# tokens of their own and 32 out, at 1, 4 and 16 in flight: labtui serve with its prefix cache,
# without it, and llama-server --parallel 4 (its slots keep their prompts), all three running,
# measured one after another on the same prompts.
prefix_chat() {
    mkdir -p assets/serve
    "$bin" serve --model "$m05" --port 18084 > /dev/null 2>&1 &
    on=$!
    "$bin" serve --model "$m05" --port 18085 --no-prefix-cache > /dev/null 2>&1 &
    off=$!
    "$LLAMA_CPP_BIN/llama-server" -m "models/$m05" --host 127.0.0.1 --port 18086 --parallel 4 \
        -t 2 -c 8192 --metrics > /dev/null 2>&1 &
    theirs=$!
    trap 'kill $on $off $theirs 2>/dev/null' EXIT
    for p in 18084 18085 18086; do wait_up $p; done
    "$bin" bench serve --endpoint http://127.0.0.1:18084 --endpoint http://127.0.0.1:18085 \
        --endpoint http://127.0.0.1:18086 --api chat --shared-prefix 80:1 --input-tokens 24:0 \
        --max-tokens 32 --ignore-eos --concurrency 1,4,16 --requests 32 --warmup 2 \
        > assets/serve/prefix-chat-0.5b.md
    kill $on $off $theirs 2>/dev/null
    wait $on $off $theirs 2>/dev/null || true
    trap - EXIT
}

if [ -z "$only" ] || [ "$only" = "--prefix" ]; then
    LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-$(../shared/tools/llama-cpp)}
    export LLAMA_CPP_BIN
    prefix_chat
fi

if [ -z "$only" ] || [ "$only" = "--profile" ]; then
    mkdir -p assets/bench
    for m in 0.5b 1.5b; do
        "$bin" bench engine --model "qwen2.5-coder-$m-instruct-q4_k_m.gguf" --pp 512 --tg 64 \
            --repeats 1 --no-reference --profile > "assets/bench/profile-$m.md"
    done
fi

if [ -z "$only" ]; then
    mkdir -p assets/bench
    for m in 0.5b 1.5b; do
        f=qwen2.5-coder-$m-instruct-q4_k_m.gguf
        "$bin" bench engine --model "$f" --pp 1,2,4,8,128,512 --tg 128 --repeats 3 \
            --no-reference --vs-llama-cpp > assets/bench/engine-$m.md
    done
    "$bin" bench engine --model "$m05" --pp 128 --tg 64 --repeats 1 > assets/bench/reference-0.5b.md
    "$bin" bench quant --model "$m05" --tg 64 --repeats 2 --ppl-tokens 1024 > assets/bench/quant-0.5b.md
    "$bin" bench batch --model "$m05" --batch 1,4,16,32 --prompt-tokens 128 --tokens 32 \
        --vs-llama-cpp > assets/bench/batch-0.5b.md
    "$bin" bench spec --model "$m15" --tokens 64 > assets/bench/spec-1.5b.md
    "$bin" bench spec --model "$m05" --modes prompt-lookup --ks 4 --tokens 64 \
        --policies lossless,tau=0.3,topk=3,typical=0.09 --charts assets/bench/policies \
        > assets/bench/policies-0.5b.md
    "$bin" bench ui --model "$m05" --tokens 64 --repeats 3 > assets/bench/ui-0.5b.md
    "$bin" bench record > assets/bench/record.md
    "$bin" bench client > assets/bench/client.md
fi
if [ -z "$only" ] || [ "$only" = "--heads" ]; then
    mkdir -p assets/bench
    for kind in eagle medusa; do
        case $kind in
            eagle) opts="--tokens 24576 --epochs 6 --minutes 14" ;;
            medusa) opts="--heads 3 --tokens 32768 --epochs 2 --minutes 12" ;;
        esac
        if [ ! -f "models/${m15%.gguf}.$kind.safetensors" ]; then
            # shellcheck disable=SC2086
            "$bin" train-draft --model "$m15" --kind $kind $opts \
                > assets/bench/heads-train-$kind-1.5b.md
        fi
    done
    "$bin" bench spec --model "$m15" --modes draft-model,prompt-lookup,layer-skip,medusa,eagle \
        --ks 2,3,auto,target=0.6:1-6 --tokens 64 --eval-perplexity > assets/bench/heads-1.5b.md
    "$bin" bench spec --model "$m15" --modes draft-model,medusa,eagle --ks 1,2 --prompts 4 \
        --tokens 64 > assets/bench/heads-k1-1.5b.md
    "$bin" bench spec --model "$m15" --modes medusa --ks 1,2,3 --prompts 4 --tokens 64 \
        --medusa-tree > assets/bench/heads-tree-1.5b.md
fi
if [ -z "$only" ] || [ "$only" = "--sensitivity" ]; then
    LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-$(../shared/tools/llama-cpp)}
    export LLAMA_CPP_BIN
    s=assets/sensitivity/qwen2.5-coder-0.5b
    tmp=$(mktemp -d)
    for t in Q3_K_M Q3_K_S; do
        "$LLAMA_CPP_BIN/llama-quantize" --allow-requantize "models/$m05" "$tmp/llama-$t.gguf" $t 2 \
            > /dev/null 2>&1
    done
    "$bin" bench sensitivity --model "$m05" --tokens 1024 --out $s --force > /dev/null
    rm -f presets/mixed-qwen2.5-coder-0.5b-*.ron
    "$bin" bench mixed --model "$m05" --map $s --like "$tmp/llama-Q3_K_M.gguf" \
        --like "$tmp/llama-Q3_K_S.gguf" --ppl-tokens 1024 --export "$tmp" --presets presets \
        --vs-llama-cpp > $s/mixed.md
    rm -rf "$tmp"
fi
UPDATE_DOCS=1 cargo test --test figures
echo "figures regenerated; the docs quote them"

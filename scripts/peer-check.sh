#!/bin/sh
# labtui bench serve against an established peer client, GuideLLM, on the same workload against
# llama-server on loopback (the 0.5B GGUF, --parallel 4): 16 prompts of exactly 256 tokens, 64
# output tokens each (ignore_eos), the completions route, the prompt cache off, no warm-up, and a
# fresh server for each tool and concurrency (1 and 4). Writes assets/serve/labtui-vs-guidellm.md:
# the stamp, both tools' output tok/s, TTFT p50 and ITL p50, and labtui's over GuideLLM's.
#   scripts/peer-check.sh          (about 10 minutes, and a 6 GB venv the first time)
# PEER_VENV names the venv (default target/peer/venv: pip installs guidellm and gguf there);
# LABTUI the binary; LLAMA_CPP_BIN llama.cpp's tools (else ../shared/tools/llama-cpp).
set -eu
cd "$(dirname "$0")/.."
bin=${LABTUI:-target/release/labtui}
[ -n "${LABTUI:-}" ] || cargo build --release --bin labtui
LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-$(../shared/tools/llama-cpp)}
m=models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
work=target/peer
venv=${PEER_VENV:-$work/venv}
mkdir -p "$work/results" assets/serve
if [ ! -x "$venv/bin/guidellm" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q guidellm==0.8.1 gguf
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
# The model's tokenizer from its GGUF (the Hub is not needed), and the prompts: each exactly 256
# tokens by it, with a unique start.
"$venv/bin/python" - "$m" "$work" <<'PY'
import json, sys
from pathlib import Path
from faker import Faker
from transformers import AutoTokenizer
model, work = Path(sys.argv[1]), Path(sys.argv[2])
tok = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
tok.save_pretrained(str(work / "tokenizer"))
f = Faker(); f.seed_instance(1234)
with open(work / "prompts.jsonl", "w") as out:
    for i in range(16):
        text = f"Request {i}: " + " ".join(f.paragraph(nb_sentences=20) for _ in range(4))
        ids, k = tok.encode(text, add_special_tokens=False), 256
        while True:
            s = tok.decode(ids[:k])
            c = len(tok.encode(s, add_special_tokens=False))
            if c == 256:
                break
            k += 256 - c
        out.write(json.dumps({"prompt": s, "output_tokens_count": 64}) + "\n")
PY
port=18083
serve() {
    "$LLAMA_CPP_BIN/llama-server" -m "$m" --host 127.0.0.1 --port $port --parallel 4 -c 8192 \
        -t 2 --metrics > /dev/null 2>&1 &
    server=$!
    tries=0
    until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do
        tries=$((tries + 1))
        [ $tries -lt 240 ] || { echo "llama-server did not start" >&2; exit 1; }
        sleep 0.5
    done
}
stop() { kill $server; wait $server 2>/dev/null || true; }
trap 'kill $server 2>/dev/null' EXIT
for c in 1 4; do
    serve
    "$venv/bin/guidellm" run \
        --backend "kind=openai_http,target=http://127.0.0.1:$port,request_format=/v1/completions,extras.body.cache_prompt=false" \
        --tokenizer "kind=huggingface_auto,model=$work/tokenizer" \
        --data "kind=json_file,path=$work/prompts.jsonl" \
        --profile "kind=concurrent,streams=$c" --constraint kind=max_requests,count=16 \
        --output "kind=json,path=$work/results/guidellm_c$c.json" --disable-progress > /dev/null
    stop
    serve
    "$bin" bench serve --endpoint "http://127.0.0.1:$port" --api completions \
        --prompts "$work/prompts.jsonl" --concurrency $c --requests 16 --max-tokens 64 \
        --ignore-eos --warmup 0 --extra-body '{"cache_prompt":false}' \
        > "$work/results/labtui_c$c.md"
    stop
done
trap - EXIT
# The table: the stamp of labtui's own run, then both tools' numbers.
"$venv/bin/python" - "$work/results" "$("$venv/bin/guidellm" --version 2>/dev/null || echo guidellm)" > assets/serve/labtui-vs-guidellm.md <<'PY'
import json, re, sys
from pathlib import Path
res, version = Path(sys.argv[1]), sys.argv[2]
md = (res / "labtui_c1.md").read_text().splitlines()
print("\n".join(l for l in md[:3]))
print()
print(f"Peer: {version.strip()}. Both against llama-server --parallel 4 (fresh for each run), 16 requests of 256 prompt tokens and 64 output tokens, completions, prompt cache off, no warm-up.")
print()
print("| concurrency | GuideLLM out tok/s | labtui out tok/s | labtui ÷ GuideLLM | GuideLLM TTFT p50 ms | labtui TTFT p50 ms | labtui ÷ GuideLLM | GuideLLM ITL p50 ms | labtui ITL p50 ms |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in (1, 4):
    g = json.loads((res / f"guidellm_c{c}.json").read_text())["benchmarks"][0]["metrics"]
    g_tok = g["output_tokens_per_second"]["successful"]["mean"]
    g_ttft = g["time_to_first_token_ms"]["successful"]["median"]
    g_itl = g["inter_token_latency_ms"]["successful"]["median"]
    row = next(l for l in (res / f"labtui_c{c}.md").read_text().splitlines() if l.startswith(f"| concurrency {c} |"))
    cells = [x.strip() for x in row.strip("|").split("|")]
    l_tok = float(cells[3])
    l_ttft = float(cells[4].split("/")[0])
    l_itl = float(cells[6].split("/")[0])
    print(f"| {c} | {g_tok:.1f} | {l_tok:.1f} | {l_tok / g_tok:.3f} | {g_ttft:.0f} | {l_ttft:.0f} | {l_ttft / g_ttft:.3f} | {g_itl:.1f} | {l_itl:.1f} |")
PY
echo "wrote assets/serve/labtui-vs-guidellm.md"

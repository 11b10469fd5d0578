#!/bin/bash
# Issue 19's lever comparison on one GPU machine: eight 8-night quick long runs side by side,
# one lever each, plus one 128-demonstration night (the cap raised), all started at once.
#
# Why side by side: on 2 CPU cores one 8-night run takes about 45 minutes, so levers were
# compared on 3-4 nights; here every arm trains and gates on the GPU (bf16, the product's
# CUDA default) while its served model and day's agent run on 2 CPU threads of its own.
# Every arm runs the same plan and curriculum (seed 0); `continue_seed1` changes only the
# training seed, to show how far two runs of the same recipe land apart.
#
#   bash benchmarks/long_run_gpu_levers.sh SECONDS OUT_DIR
#
# Each arm stops after SECONDS (the long run keeps every finished night in its results.json);
# OUT_DIR receives long_run_gpu_levers.tgz (each arm's results.json, report and log) and a
# summary log. Needs the package importable (PYTHONPATH or an install) and a CUDA GPU.
# LEVERS_DTYPE (default auto) sets every arm's sleep_dtype. auto meant bf16 on CUDA when the
# committed run docs/results/long_run/gpu_levers/ used it, and fp32 since gpu_levers_fp32/
# (LEVERS_DTYPE=float32) showed bf16 was the noise: rerun that one with LEVERS_DTYPE=bfloat16.
# LEVERS_ARMS (names below, space-separated; default all eight) picks the arms;
# LEVERS_NIGHT128 names the 128-demonstration nights to run beside them (default night128, the
# defaults; 0 or "" for none: fewer processes on the GPU finish more nights in the same time):
# night128_r16 (LoRA rank 16) and night128_spd12 (12 steps per demonstration) ask whether the
# 128 night lacks capacity or exposure. More arms run only when named: replay16,
# replay16_seed1, replay64 and replay64_seed1 (every consolidated demonstration of a quick run),
# recent10 (replay 8, all from the newest night first), rank16, rank16_seed1 and
# rank16_replay64 (LoRA rank 16), and light64 / light64_seed1 (every consolidated demonstration
# replayed at 2 steps each instead of 8, drawn a quarter as often as a new one: coverage without
# taking the new night's steps).
set -u
limit=${1:?seconds each arm may run}
out=${2:?folder for the results}
work=${LEVERS_WORK:-/tmp/long_run_levers}
mkdir -p "$work" "$out"
export PYTHONUNBUFFERED=1 AGENT_CL_TORCH_THREADS=2 TOKENIZERS_PARALLELISM=false
export AGENT_CL_SLEEP_DTYPE=${LEVERS_DTYPE:-auto}

# One provisioned model, hard-linked into each arm's home (nine conversions would race for
# the cores the arms need).
AGENT_CL_HOME="$work/shared" python3 -c "
from agent_cl.config import Settings
from agent_cl.models.provision import provision_embedded_model
print(provision_embedded_model(Settings.load().models_dir).path)" || exit 1

arms=" ${LEVERS_ARMS:-continue continue_seed1 fresh16 fresh32 replay0 replay8 recent05 sft_kl} "
arm() {  # arm NAME [VAR=VALUE ...]: one 8-night quick long run with those settings
    local name=$1
    shift
    [[ $arms == *" $name "* ]] || return 0
    mkdir -p "$work/$name/home"
    cp -al "$work/shared/models" "$work/$name/home/models"
    (
        env "$@" AGENT_CL_HOME="$work/$name/home" timeout -s TERM "$limit" python3 -c "
import sys
from agent_cl.cli import main
sys.argv = ['agent-cl', 'eval', '--experiment', 'long-run', '--quick', '--nights', '8',
            '--out', '$work/$name/out']
main()" >"$work/$name.log" 2>&1
        echo "$name rc=$? $(date +%T)" >>"$work/arms.log"
    ) &
}

date +%T >"$work/arms.log"
arm continue
arm continue_seed1 AGENT_CL_SEED=1
arm fresh16 AGENT_CL_SLEEP_LORA_PER_NIGHT=fresh
arm fresh32 AGENT_CL_SLEEP_LORA_PER_NIGHT=fresh AGENT_CL_ADAPTER_MAX_RANK=32
arm replay0 AGENT_CL_SLEEP_REPLAY=0
arm replay8 AGENT_CL_SLEEP_REPLAY=8
arm recent05 AGENT_CL_SLEEP_REPLAY_RECENT=0.5
arm sft_kl AGENT_CL_SLEEP_METHOD=sft_kl
# Only when named in LEVERS_ARMS: replay coverage (docs/results/long_run/replay_forgetting.json:
# the facts a night lost were ones it had not replayed, mostly the newest night's).
arm replay16 AGENT_CL_SLEEP_REPLAY=16
arm replay16_seed1 AGENT_CL_SLEEP_REPLAY=16 AGENT_CL_SEED=1
arm replay64 AGENT_CL_SLEEP_REPLAY=64
arm replay64_seed1 AGENT_CL_SLEEP_REPLAY=64 AGENT_CL_SEED=1
arm recent10 AGENT_CL_SLEEP_REPLAY=8 AGENT_CL_SLEEP_REPLAY_RECENT=1.0
# capacity: the adapter a continuing life keeps is the first night's rank
arm rank16 AGENT_CL_SLEEP_LORA_RANK=16
arm rank16_seed1 AGENT_CL_SLEEP_LORA_RANK=16 AGENT_CL_SEED=1
arm rank16_replay64 AGENT_CL_SLEEP_LORA_RANK=16 AGENT_CL_SLEEP_REPLAY=64
# coverage at a fixed share: the whole pool, each replayed demonstration a quarter of a new one
arm light64 AGENT_CL_SLEEP_REPLAY=64 AGENT_CL_SLEEP_REPLAY_STEPS_PER_DEMO=2
arm light64_seed1 AGENT_CL_SLEEP_REPLAY=64 AGENT_CL_SLEEP_REPLAY_STEPS_PER_DEMO=2 AGENT_CL_SEED=1

nights128=${LEVERS_NIGHT128-night128}
[[ $nights128 == 1 ]] && nights128=night128
[[ $nights128 == 0 ]] && nights128=
nights128=" $nights128 "
night128() {  # night128 NAME [VAR=VALUE ...]: one first night of 128 facts, the cap raised
    local name=$1
    shift
    [[ $nights128 == *" $name "* ]] || return 0
    (
        env "$@" AGENT_CL_HOME="$work/shared" AGENT_CL_SLEEP_MAX_DEMOS=128 timeout -s TERM \
            "$limit" python3 benchmarks/night_size.py --sizes 128 \
            --out "$work/${name/night128/night_size_128}.json" >"$work/$name.log" 2>&1
        echo "$name rc=$? $(date +%T)" >>"$work/arms.log"
    ) &
}
night128 night128
night128 night128_r16 AGENT_CL_SLEEP_LORA_RANK=16
night128 night128_spd12 AGENT_CL_SLEEP_STEPS_PER_DEMO=12
pack() {  # what comes back: each arm's results, report and log (not homes, models or adapters)
    tar czf "$out/long_run_gpu_levers.tgz.part" -C "$work" --exclude='*/home' \
        --exclude='*/adapters' --exclude='shared' . && \
        mv "$out/long_run_gpu_levers.tgz.part" "$out/long_run_gpu_levers.tgz"
}
# every minute: the GPU's load, and the results so far (a call cut short by the machine's
# limit still returns the nights that finished)
(while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader \
    >>"$work/gpu.log"; pack; done) &
watcher=$!
wait $(jobs -p | grep -v "^$watcher$")
kill $watcher 2>/dev/null
pack
cat "$work/arms.log"
for log in "$work"/*.log; do echo "== $log"; tail -n 3 "$log"; done

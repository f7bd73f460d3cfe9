#!/bin/sh
# Install Amicus and its models from this offline bundle (Linux, macOS), or remove them.
#
#   ./install.sh [--prefix DIR] [--bin-dir DIR] [--data-dir DIR] [--python PATH] [--force]
#   ./install.sh --uninstall [--prefix DIR]
#
# The work is done by install.py beside this file, the same program on every platform
# (checksums, environment, models, rollback, uninstall). This script only finds a Python
# 3.10+ to run it with: the one --python names, else pythonX.Y (the version this bundle's
# wheels are built for), python3 or python on PATH.
# Exit status: 0 done, 1 failure, 2 bad arguments, 3 corrupt or incomplete bundle,
# 130 interrupted. Plain POSIX sh: macOS's bash 3.2, dash and busybox run it alike.

PYTHON_VERSION="@PYTHON_VERSION@"  # filled in by packaging/bundle.py
HERE=$(cd "$(dirname "$0")" && pwd -P) || exit 1
found=""

# try_python PYTHON ARGS...: run install.py with PYTHON if it is 3.10 or newer
try_python() {
    candidate=$1
    shift
    command -v "$candidate" >/dev/null 2>&1 || return 0
    if version=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])
sys.exit(sys.version_info < (3, 10))' 2>/dev/null); then
        AMICUS_INSTALLER=install.sh  # install.py names itself so in its messages
        export AMICUS_INSTALLER
        exec "$candidate" -I "$HERE/install.py" "$@"
    fi
    found="$found $candidate=${version:-?}"
}

previous=""
for arg in "$@"; do  # --python PATH or --python=PATH comes first
    case $previous in --python) try_python "$arg" "$@" ;; esac
    case $arg in --python=*) try_python "${arg#--python=}" "$@" ;; esac
    previous=$arg
done
for candidate in "python$PYTHON_VERSION" python3 python; do
    try_python "$candidate" "$@"
done
printf 'install.sh: error: %s; found:%s. %s\n' \
    "Python 3.10 or newer is needed to run the installer (and Python $PYTHON_VERSION for this bundle's wheels)" \
    "${found:- none}" "Install Python $PYTHON_VERSION from the offline media or pass --python PATH" >&2
exit 1

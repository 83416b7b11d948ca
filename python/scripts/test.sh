#!/usr/bin/env bash
# The Python package's test step (run by scripts/test.sh, or on its own):
#
# 1. builds the abi3 wheel with maturin (debug profile: the tests need no optimised build;
#    `--release` as first argument builds an optimised one) and the harness command
#    `redis-deployment` (harness/src/bin), which the tests drive to start real Redis
#    deployments;
# 2. for each (Python, dramatiq, redis-py) of the matrix below, creates a virtualenv, installs
#    the wheel and those versions from PyPI, and runs pytest on python/tests: the whole suite
#    on the newest dramatiq 2.2.x with redis-py 8 (and RQ, for the public factory's RQ test),
#    the `smoke` subset on the oldest supported release (dramatiq 1.17, redis-py 5.0.8, as the
#    original middleware pinned) on Python 3.10. Each suite's duration is printed.
#
# Needs cargo, python3 (>= 3.10) with venv, and network access to PyPI. Redis comes from
# REDIS_SERVER or PATH (scripts/test.sh finds or installs it first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PROFILE=()
[[ ${1:-} == --release ]] && PROFILE=(--release)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dramatiq-sentinel-python.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

python_at_least_310() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}

find_python() { # find_python 3.10 -> a python3.10 interpreter, else python3
    local candidate
    for candidate in "python$1" "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1"*/bin/python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_at_least_310 "$candidate"; then
            command -v "$candidate"
            return
        fi
    done
    command -v python3
}

PY=$(command -v python3) || { echo "python3 not found" >&2; exit 1; }
python_at_least_310 "$PY" || { echo "python3 is older than 3.10" >&2; exit 1; }

started=$SECONDS
echo "==> [python] tools: maturin"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2"

echo "==> [python] building the wheel (maturin ${PROFILE[*]:-debug}) and redis-deployment"
build_started=$SECONDS
"$WORK/tools/bin/maturin" build -q "${PROFILE[@]}" --manifest-path python/Cargo.toml \
    --interpreter "$PY" --out "$WORK/wheels"
echo "==> [python] wheel built in $((SECONDS - build_started)) s: $(ls "$WORK/wheels")"
cargo build -q -p dramatiq-sentinel-harness --bin redis-deployment
export DRAMATIQ_SENTINEL_DEPLOYMENT=$TARGET/debug/redis-deployment

failures=0
run_suite() { # run_suite NAME PYTHON "requirements" [pytest args...]
    local name=$1 python=$2 requirements=$3
    shift 3
    echo "==> [python] $name: $("$python" --version 2>&1), $requirements"
    "$python" -m venv "$WORK/$name"
    # shellcheck disable=SC2086
    "$WORK/$name/bin/pip" install -q --disable-pip-version-check "$WORK"/wheels/*.whl \
        $requirements "pytest>=7"
    local suite_started=$SECONDS
    if ! (cd python/tests && "$WORK/$name/bin/python" -m pytest -q -p no:cacheprovider "$@"); then
        echo "==> [python] FAILED: $name" >&2
        failures=$((failures + 1))
    fi
    echo "==> [python] $name: pytest took $((SECONDS - suite_started)) s"
}

run_suite newest "$PY" "dramatiq>=2.2,<2.3 redis>=8,<9 rq>=2,<4"
run_suite oldest "$(find_python 3.10)" "dramatiq==1.17.0 redis==5.0.8" -m smoke

echo "==> [python] done in $((SECONDS - started)) s"
exit $((failures > 0))

#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest. Exit code 5 (no tests collected) is a failure.
# VENV picks the environment (default .venv); LINT=0 skips the lint and type checks (they do not
# depend on the interpreter: .ci/run checks once, on the first environment).
set -uo pipefail
cd "$(dirname "$0")/.."
V=${VENV:-.venv}/bin
if [ "${LINT:-1}" != 0 ]; then
    $V/ruff check rxaudio tests benchmarks || exit 1
    $V/ruff format --check rxaudio tests benchmarks || exit 1
    $V/mypy --strict rxaudio || exit 1
    $V/lint-imports || exit 1
fi
$V/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit $rc

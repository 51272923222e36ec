#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest. Exit code 5 (no tests collected) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
$V/ruff check rxaudio tests benchmarks || exit 1
$V/ruff format --check rxaudio tests benchmarks || exit 1
$V/mypy --strict rxaudio || exit 1
$V/lint-imports || exit 1
$V/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit $rc

#!/usr/bin/env bash
# The test command: type-check, then every test file through node's test runner.
# Files are listed by find because Node 20 does not expand quoted globs.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
mapfile -t files < <(find src test -name '*.test.ts' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
exec node --import tsx --test --test-concurrency=1 "${files[@]}"

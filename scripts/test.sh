#!/usr/bin/env bash
# The test command: type-check, then every test file through node's test runner.
# Files are listed by find because Node 20 does not expand quoted globs.
# Browser tests (test/browser-*.test.ts) run in a second runner beside the
# others, so the suite does not wait on chromium; their output follows.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
mapfile -t files < <(find src test -name '*.test.ts' ! -name 'browser-*.test.ts' | sort)
mapfile -t browser < <(find test -name 'browser-*.test.ts' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
browser_pid=
if [ "${#browser[@]}" -gt 0 ]; then
  browser_log=$(mktemp)
  trap 'rm -f "$browser_log"' EXIT
  node --import tsx --test --test-concurrency=1 "${browser[@]}" >"$browser_log" 2>&1 &
  browser_pid=$!
fi
status=0
node --import tsx --test --test-concurrency=1 "${files[@]}" || status=$?
if [ -n "$browser_pid" ]; then
  browser_status=0
  wait "$browser_pid" || browser_status=$?
  echo "# browser tests (${browser[*]}):"
  cat "$browser_log"
  if [ "$browser_status" -ne 0 ]; then echo "# browser tests failed (exit $browser_status)" >&2; status=1; fi
fi
exit "$status"

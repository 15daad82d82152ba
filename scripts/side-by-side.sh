#!/usr/bin/env bash
# Run jobs side by side and report them one after the other.
# Usage: side-by-side.sh "LABEL=COMMAND ..." ...  (each argument: a label, '=', a command line run by bash)
# Each job's stdout+stderr goes to its own log; when all have ended, each log is printed whole, in the order given,
# under "== LABEL: rc=N, S s". Exits 1 if any job failed.
set -uo pipefail
dir=$(mktemp -d "${TMPDIR:-/tmp}/side-by-side.XXXXXX")
trap 'rm -rf "$dir"' EXIT
labels=()
i=0
for job in "$@"; do
  label=${job%%=*}
  command=${job#*=}
  labels+=("$label")
  (
    start=$(date +%s)
    bash -c "$command" >"$dir/$i.log" 2>&1
    echo "$? $(($(date +%s) - start))" >"$dir/$i.rc"
  ) &
  i=$((i + 1))
done
wait
failed=0
for ((j = 0; j < i; j++)); do
  read -r rc took <"$dir/$j.rc"
  echo "== ${labels[$j]}: rc=$rc, $took s"
  cat "$dir/$j.log"
  [ "$rc" = 0 ] || failed=1
done
exit "$failed"

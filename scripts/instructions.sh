#!/usr/bin/env bash
# Instructions per operation for every case of benches/instructions.rs,
# measured with callgrind (valgrind) as the difference between two runs of
# different lengths, so set-up cost cancels out. Prints each case's
# instructions per operation, its ratio to its group's reference (the last
# case before it named fmt_json_*, bare_registry_* or global_filter_*) and its
# heap allocations per operation (every thread, counted without valgrind).
#
#   scripts/instructions.sh [case ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo bench --bench instructions --features otlp --no-run >/dev/null 2>&1
bin=$(cargo bench --bench instructions --features otlp --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*instructions-[^"]*"' | tail -n1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "bench binary not found" >&2; exit 1; }
short=1000
long=11000
count() { # case iterations -> total instructions
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  grep -m1 '^summary:' "$out" | awk '{print $2}'
  rm -f "$out"
}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || mapfile -t cases < <("$bin" list)
ref=0
printf '%-36s %12s %8s %10s\n' case instructions ratio allocs
for case in "${cases[@]}"; do
  a=$(count "$case" $short)
  b=$(count "$case" $long)
  per=$(( (b - a) / (long - short) ))
  case "$case" in fmt_json_*|bare_registry_*|global_filter_*) ref=$per ;; esac
  ratio=$(awk -v p="$per" -v r="$ref" 'BEGIN { if (r > 0) printf "%.3f", p / r; else print "-" }')
  allocs=$("$bin" "$case" allocs)
  printf '%-36s %12d %8s %10s\n' "$case" "$per" "$ratio" "$allocs"
done

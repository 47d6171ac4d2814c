#!/usr/bin/env bash
# Opt-in comparison with other stacks: instructions per operation for every
# case of this package (src/main.rs), counted by callgrind over two run
# lengths so that set-up and tear-down cancel out, then the ratio to the
# group's `fmt_json_*` case and the heap allocations per operation (every
# thread, counted by the binary itself without valgrind).
#
#   benches/compare/instructions.sh [case ...]
#
# Builds this package in release mode; its target directory is cargo's
# usual one unless CARGO_TARGET_DIR says otherwise.
set -euo pipefail
cd "$(dirname "$0")"
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null \
  || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
# The builder reads RUST_LOG; every stack here is measured at level info.
unset RUST_LOG
cargo build --release --quiet
bin=$(cargo build --release --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -n1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "compare binary not found" >&2; exit 1; }
short=1000
long=11000
total() { # case iterations -> instructions of the whole run, every thread
  local out
  out=$(mktemp)
  if ! valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>"$out.err"; then
    echo "$1 $2 failed under valgrind:" >&2
    tail -n 20 "$out.err" >&2
    rm -f "$out" "$out.err"
    exit 1
  fi
  # fastrace's clock (fastant) calibrates the TSC in a constructor that runs
  # before main in every case of this binary, spinning on the clock for a
  # stretch of wall time: its count varies by millions from run to run and
  # would not cancel out, so its inclusive cost is taken off the total.
  local all calibration
  all=$(grep -m1 '^summary:' "$out" | awk '{print $2}')
  calibration=$(callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null \
    | grep -m1 'fastant::tsc_now::.*init.*ctor' | awk '{gsub(",", "", $1); print $1}')
  echo $(( all - ${calibration:-0} ))
  rm -f "$out" "$out.err"
}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || mapfile -t cases < <("$bin" list)
reference=0
printf '%-28s %12s %8s %8s\n' case instructions ratio allocs
for case in "${cases[@]}"; do
  a=$(total "$case" $short)
  b=$(total "$case" $long)
  per=$(( (b - a) / (long - short) ))
  case "$case" in fmt_json_*) reference=$per ;; esac
  ratio=$(awk -v p="$per" -v r="$reference" 'BEGIN { if (r > 0) printf "%.3f", p / r; else print "-" }')
  allocs=$("$bin" "$case" allocs)
  printf '%-28s %12d %8s %8s\n' "$case" "$per" "$ratio" "$allocs"
done

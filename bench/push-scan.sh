#!/usr/bin/env bash
# Benchmark: what leaked-token push protection costs a push. One gitpat
# (release build, git engine), pushes timed with the scan on and off
# (secret_push_protection_enabled, switched through the settings API between
# runs), interleaved: a full push of a repository (heads and tags) into a new
# one, and ten one-commit pushes on top of it. Prints medians, their ratio
# on/off, and the median of each run's own on/off ("paired": steadier on a
# noisy machine), and the scan's own time as the server logged it.
#
# Usage: bench/push-scan.sh [RUNS]     (default 7; medians)
#   REPO=/path/to/repo   the repository to push (default: the ripgrep mirror,
#                        /work/.mirror/BurntSushi+ripgrep/repo)
#   GITPAT=/path/to/gitpat  (default: target/release/gitpat, or
#                        $CARGO_TARGET_DIR/release/gitpat)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-7}
src=${REPO:-/work/.mirror/BurntSushi+ripgrep/repo}
gitpat=${GITPAT:-${CARGO_TARGET_DIR:-$here/target}/release/gitpat}
git=${GIT:-/usr/bin/git}
[ -x "$gitpat" ] || { echo "build first: cargo build --release (or set GITPAT)" >&2; exit 1; }

root=$(mktemp -d /tmp/gitpat-scan-bench.XXXXXX)
cleanup() { kill "$(cat "$root/gitpat.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 HOME=$root
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

$git clone -q --bare "$src" "$root/src.git"
# Heads and tags only (a mirror's pull refs are not pushed).
$git -C "$root/src.git" for-each-ref --format='delete %(refname)' refs/pull | $git -C "$root/src.git" update-ref --stdin

export GITPAT_DATA_DIR=$root/gitpat GITPAT_LOG=warn,gitpat::service::leaks=debug
"$gitpat" user create alice --email alice@example.com --admin >/dev/null
token=$("$gitpat" token create --user alice --name bench --scopes api)
port=18093
"$gitpat" serve --listen 127.0.0.1:$port --pack-engine git >"$root/gitpat.log" 2>&1 &
echo $! >"$root/gitpat.pid"
for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:$port/-/liveness && break; sleep 0.1; done
base="http://alice:$token@127.0.0.1:$port/alice"
scan() { # on|off
  local v; [ "$1" = on ] && v=true || v=false
  curl -sf -X PUT -H "PRIVATE-TOKEN: $token" -H 'Content-Type: application/json' \
    -d "{\"secret_push_protection_enabled\": $v}" "http://127.0.0.1:$port/api/v4/application/settings" >/dev/null
}

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }
declare -A results
record() { results[$1/$2]="${results[$1/$2]:-} $3"; }

for i in $(seq "$runs"); do
  # Alternate which goes first, so drift favours neither.
  if [ $((i % 2)) = 0 ]; then order="on off"; else order="off on"; fi
  for mode in $order; do
    scan "$mode"
    url="$base/b-$mode-$i.git"
    t0=$(now)
    $git -C "$root/src.git" push -q "$url" 'refs/heads/*:refs/heads/*' 'refs/tags/*:refs/tags/*' >/dev/null 2>&1 \
      || { echo "push failed ($mode)" >&2; exit 1; }
    record "full push" "$mode" "$(since "$t0")"
    work=$root/work-$mode-$i
    $git clone -q "$url" "$work" 2>/dev/null
    total=0
    for n in $(seq 10); do
      echo "change $n" >>"$work/bench-change.txt"
      $git -C "$work" add bench-change.txt && $git -C "$work" commit -q -m "small $n"
      t0=$(now)
      $git -C "$work" push -q "$url" HEAD:refs/heads/bench >/dev/null 2>&1 || { echo "small push failed" >&2; exit 1; }
      total=$(awk -v t="$total" -v d="$(since "$t0")" 'BEGIN { printf "%.4f", t + d }')
    done
    record "ten 1-commit pushes" "$mode" "$total"
    rm -rf "$work" "$GITPAT_DATA_DIR/repositories/alice/b-$mode-$i.git"
  done
done

echo "$(basename "$src"): $($git -C "$root/src.git" count-objects -v | awk '/in-pack/ {print $2}') objects; $runs runs, alternating; medians in seconds"
printf '%-22s %10s %10s %8s %8s\n' operation "scan off" "scan on" "on/off" "paired"
for name in "full push" "ten 1-commit pushes"; do
  python3 - "$name" "${results[$name/off]}" "${results[$name/on]}" <<'PY'
import statistics, sys
name, off, on = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
a, b = statistics.median(off), statistics.median(on)
# paired: the median of each run's on/off (the two pushes of a run are
# next to each other in time, so the machine's drift cancels).
paired = statistics.median(y / x for x, y in zip(off, on))
print(f"{name:<22} {a:10.3f} {b:10.3f} {b/a:8.3f} {paired:8.3f}")
PY
done
# What the scan itself took, as the server logged it (debug).
# The full pushes' scans are the $runs longest.
grep -o 'scanned a push for tokens in [0-9]* ms' "$root/gitpat.log" | awk '{print $7}' | sort -n | tail -n "$runs" | awk '
  { v[NR] = $1; s = s " " $1 } END { if (NR) printf "the scan of the full pushes: median %d ms (all:%s)\n", v[int((NR + 1) / 2)], s }'

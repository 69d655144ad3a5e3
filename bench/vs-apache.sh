#!/usr/bin/env bash
# Benchmark: gitpat against git http-backend under Apache (the peer in
# ../shared/bench/peer-apache.sh), on this machine, in one run. Builds a
# test repository, serves it from both, times the same git operations
# alternately, and prints medians and the gitpat/Apache ratio.
# Needs: apache2 apache2-utils (Debian), a release build (cargo build --release).
# Usage: bench/vs-apache.sh [RUNS]   (default 7; the machine is noisy: medians)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-7}
peer=$here/../shared/bench/peer-apache.sh
gitpat=$here/target/release/gitpat
git=${GIT:-/usr/local/bin/git}
[ -x "$gitpat" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$peer" ] || { echo "missing $peer" >&2; exit 1; }

crates=$(ls -d "$HOME"/.cargo/registry/src/*/* 2>/dev/null | sort | head -120)
[ -n "$crates" ] || { echo "no crate sources under ~/.cargo/registry to build the test repository from" >&2; exit 1; }
root=$(mktemp -d /tmp/gitpat-bench.XXXXXX)
trap 'bash "$peer" stop "$root" >/dev/null 2>&1 || true; kill $(cat "$root/gitpat.pid" 2>/dev/null) 2>/dev/null || true' EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 HOME=$root
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

# The repository: the crate sources on this machine, committed a few crates at a time.
src=$root/src
$git init -q -b main "$src"
n=0
for d in $crates; do
  cp -r "$d" "$src/" 2>/dev/null || true
  n=$((n + 1))
  if [ $((n % 4)) = 0 ]; then $git -C "$src" add -A >/dev/null; $git -C "$src" commit -q -m "batch $n"; fi
done
$git -C "$src" add -A >/dev/null; $git -C "$src" commit -q -m "last" || true
$git -C "$src" gc -q
commits=$($git -C "$src" rev-list --count HEAD)
size=$(du -sh "$src/.git" | cut -f1)

# Apache peer.
mkdir -p "$root/repos"
$git clone -q --bare "$src" "$root/repos/bench.git"
$git -C "$root/repos/bench.git" config http.receivepack true
apache_port=18080
bash "$peer" start "$root" $apache_port
apache_url="http://alice:alice-password@127.0.0.1:$apache_port/git/bench.git"

# gitpat.
export GITPAT_DATA_DIR=$root/gitpat GITPAT_LOG=warn
"$gitpat" user create alice --email alice@example.com >/dev/null
token=$("$gitpat" token create --user alice --name bench --scopes api)
"$gitpat" repo create alice/bench --import "$src" >/dev/null
gitpat_port=18081
"$gitpat" serve --listen 127.0.0.1:$gitpat_port >"$root/gitpat.log" 2>&1 &
echo $! >"$root/gitpat.pid"
for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:$gitpat_port/-/liveness && break; sleep 0.1; done
gitpat_url="http://alice:$token@127.0.0.1:$gitpat_port/alice/bench.git"

time_it() {
  local t0=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'
}
declare -A results
measure() { # name, command template with URL
  local name=$1; shift
  for i in $(seq "$runs"); do
    for who in apache gitpat; do
      local url=apache_url; [ $who = gitpat ] && url=gitpat_url
      rm -rf "$root/w"; mkdir -p "$root/w"
      local t; t=$(cd "$root/w" && time_it "$@" "${!url}")
      results[$name/$who]="${results[$name/$who]:-} $t"
    done
  done
}
measure "clone (protocol v0)" $git -c protocol.version=0 clone -q --bare
measure "clone --depth 1 (v0)" $git -c protocol.version=0 clone -q --bare --depth 1
measure "ls-remote (v0)" $git -c protocol.version=0 ls-remote
measure "clone (default protocol)" $git clone -q --bare

echo "repository: $commits commits, .git $size; $runs runs each, alternating; medians in seconds"
printf '%-26s %10s %10s %8s\n' operation apache gitpat ratio
for name in "clone (protocol v0)" "clone --depth 1 (v0)" "ls-remote (v0)" "clone (default protocol)"; do
  python3 - "$name" "${results[$name/apache]}" "${results[$name/gitpat]}" <<'PY'
import statistics, sys
name, a, g = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ma, mg = statistics.median(a), statistics.median(g)
print(f"{name:<26} {ma:10.3f} {mg:10.3f} {mg/ma:8.2f}")
PY
done

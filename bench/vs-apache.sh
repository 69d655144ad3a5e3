#!/usr/bin/env bash
# Benchmark: fetches from gitpat against git http-backend under Apache (the
# peer in ../shared/bench/peer-apache.sh), on this machine, in one
# interleaved run, as medians and gitpat/Apache ratios:
#   - authenticated info/refs requests per second, protocol v0 and v2 (wrk);
#   - ls-remote x20, no-op fetch x20, full clone (v0 and v2), 8 concurrent
#     identical clones: wall time;
#   - for gitpat, the CPU seconds of the server and its children (git
#     pack-objects) per operation, and its peak memory (VmHWM) at the end.
#
# Needs: apache2 apache2-utils wrk (Debian), a release build (cargo build --release).
# Usage: bench/vs-apache.sh [RUNS]     (default 5; the machine is noisy: medians)
#   REPO=/path/to/repo   a real repository, e.g. a clone of BurntSushi/ripgrep
#                        or git/git (heads and tags are served); default: one
#                        generated from the crate sources under ~/.cargo
#   PACK_CACHE_MAX_AGE=S gitpat's pack cache entry lifetime (default 0: only
#                        concurrent identical clones share a pack)
# The "client floor" row is the clients' own share of 8 concurrent clones:
# 8 concurrent `git index-pack` of the full pack, with no server at all.
# Both servers run Debian's git (/usr/bin/git, as git-http-backend is), so
# only the servers differ; the client is $GIT (default /usr/bin/git).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
peer=$here/../shared/bench/peer-apache.sh
gitpat=$here/target/release/gitpat
git=${GIT:-/usr/bin/git}
[ -x "$gitpat" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$peer" ] || { echo "missing $peer" >&2; exit 1; }
command -v wrk >/dev/null || { echo "apt-get install wrk" >&2; exit 1; }
command -v apache2 >/dev/null || [ -x /usr/sbin/apache2 ] || { echo "apt-get install apache2 apache2-utils" >&2; exit 1; }

root=$(mktemp -d /tmp/gitpat-bench.XXXXXX)
cleanup() {
  bash "$peer" stop "$root" >/dev/null 2>&1 || true
  kill "$(cat "$root/gitpat.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 HOME=$root
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

# --- The repository: bare, heads and tags, refs packed as git gc leaves them.
src=$root/src.git
if [ -n "${REPO:-}" ]; then
  $git clone -q --bare "$REPO" "$src"
else
  work=$root/work
  $git init -q -b main "$work"
  n=0
  for d in $(ls -d "$HOME"/../.cargo/registry/src/*/* /root/.cargo/registry/src/*/* 2>/dev/null | sort -u | head -120); do
    cp -r "$d" "$work/" 2>/dev/null || true
    n=$((n + 1))
    if [ $((n % 4)) = 0 ]; then
      $git -C "$work" add -A >/dev/null
      $git -C "$work" commit -q -m "batch $n"
      $git -C "$work" tag -a -m "v$n" "v$n"
    fi
  done
  $git -C "$work" add -A >/dev/null
  $git -C "$work" commit -q -m last || true
  $git clone -q --bare "$work" "$src"
fi
$git -C "$src" gc -q
refs=$($git -C "$src" for-each-ref | wc -l)
objects=$($git -C "$src" count-objects -v | awk '/^count|^in-pack/ { n += $2 } END { print n }')
size=$(du -sh "$src" | cut -f1)

# --- Apache peer.
mkdir -p "$root/repos"
cp -r "$src" "$root/repos/bench.git"
apache_port=18080
bash "$peer" start "$root" $apache_port
apache_url="http://alice:alice-password@127.0.0.1:$apache_port/git/bench.git"
apache_auth=$(printf 'alice:alice-password' | base64)

# --- gitpat.
export GITPAT_DATA_DIR=$root/gitpat GITPAT_LOG=warn
"$gitpat" user create alice --email alice@example.com >/dev/null
token=$("$gitpat" token create --user alice --name bench --scopes read_repository)
"$gitpat" repo create alice/bench --import "$src" >/dev/null
gitpat_port=18081
# Entries kept 0 s: one clone after another each makes its pack (as
# Apache's do), while concurrent identical ones share a run.
GITPAT_PACK_CACHE_MAX_AGE_SECONDS=${PACK_CACHE_MAX_AGE:-0} \
  "$gitpat" serve --listen 127.0.0.1:$gitpat_port >"$root/gitpat.log" 2>&1 &
gpid=$!
echo $gpid >"$root/gitpat.pid"
for _ in $(seq 100); do curl -s -o /dev/null 127.0.0.1:$gitpat_port/-/liveness && break; sleep 0.1; done
gitpat_url="http://alice:$token@127.0.0.1:$gitpat_port/alice/bench.git"
gitpat_auth=$(printf 'alice:%s' "$token" | base64 -w0)

# CPU seconds of gitpat and its reaped children (utime stime cutime cstime).
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{ printf "%.3f", ($14 + $15 + $16 + $17) / t }' "/proc/$gpid/stat"; }

declare -A results cpus
record() { results[$1/$2]="${results[$1/$2]:-} $3"; }

# One timed run of a shell snippet with $URL set; prints seconds.
time_it() {
  local url=$1; shift
  rm -rf "$root/w"; mkdir -p "$root/w"
  local t0=$EPOCHREALTIME
  (cd "$root/w" && URL=$url bash -c "$1") >/dev/null 2>&1 || { echo "failed: $1" >&2; exit 1; }
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'
}

measure() { # name, snippet using $URL and $GIT
  local name=$1 snippet=$2
  for _ in $(seq "$runs"); do
    record "$name" apache "$(time_it "$apache_url" "$snippet")"
    local c0; c0=$(cpu)
    record "$name" gitpat "$(time_it "$gitpat_url" "$snippet")"
    cpus[$name]="${cpus[$name]:-} $(awk -v a="$c0" -v b="$(cpu)" 'BEGIN { printf "%.3f", b - a }')"
  done
}

rps() { # url, auth, extra header or ""
  local -a h=(-H "Authorization: Basic $2")
  [ -n "$3" ] && h+=(-H "$3")
  wrk -t2 -c16 -d4s "${h[@]}" "$1" | awk '/Requests\/sec/ { print $2 }'
}
measure_rps() { # name, extra header
  local name=$1 header=$2
  for _ in $(seq "$runs"); do
    record "$name" apache "$(rps "http://127.0.0.1:$apache_port/git/bench.git/info/refs?service=git-upload-pack" "$apache_auth" "$header")"
    local c0; c0=$(cpu)
    local r; r=$(rps "http://127.0.0.1:$gitpat_port/alice/bench.git/info/refs?service=git-upload-pack" "$gitpat_auth" "$header")
    record "$name" gitpat "$r"
    # CPU per request.
    cpus[$name]="${cpus[$name]:-} $(awk -v a="$c0" -v b="$(cpu)" -v r="$r" 'BEGIN { printf "%.6f", (b - a) / (r * 4) }')"
  done
}

export GIT=$git
measure_rps "info/refs v0 (req/s)" ""
measure_rps "info/refs v2 (req/s)" "Git-Protocol: version=2"
measure "ls-remote x20" 'for i in $(seq 20); do $GIT ls-remote "$URL" >/dev/null; done'
measure "no-op fetch x20" '$GIT init -q --bare r && $GIT -C r fetch -q "$URL" "refs/heads/*:refs/heads/*" && for i in $(seq 20); do $GIT -C r fetch -q "$URL" "refs/heads/*:refs/heads/*"; done'
measure "clone (v0)" '$GIT -c protocol.version=0 clone -q --bare "$URL" c'
measure "clone (v2)" '$GIT -c protocol.version=2 clone -q --bare "$URL" c'
measure "8 concurrent clones" 'for i in 1 2 3 4 5 6 7 8; do $GIT clone -q --bare "$URL" c$i & done; wait'

# The clients' own work in 8 concurrent clones, without any server.
$git -C "$src" pack-objects --revs --all --stdout --delta-base-offset -q </dev/null >"$root/full.pack"
for _ in $(seq "$runs"); do
  rm -rf "$root/f"; mkdir -p "$root/f"
  t0=$EPOCHREALTIME
  pids=()
  for i in 1 2 3 4 5 6 7 8; do
    ($git init -q --bare "$root/f/$i" && $git -C "$root/f/$i" index-pack --stdin <"$root/full.pack" >/dev/null) &
    pids+=($!)
  done
  wait "${pids[@]}"
  record "client floor: 8 index-packs" apache "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')"
done

echo "repository: ${REPO:-generated}, $refs refs, $objects objects, $size; $runs runs each, alternating; medians"
echo "machine: $(nproc) cores, $(uname -sr), git $($git version | cut -d' ' -f3)"
printf '%-24s %10s %10s %8s %14s\n' operation apache gitpat ratio "gitpat CPU s"
for name in "info/refs v0 (req/s)" "info/refs v2 (req/s)" "ls-remote x20" "no-op fetch x20" "clone (v0)" "clone (v2)" "8 concurrent clones"; do
  python3 - "$name" "${results[$name/apache]}" "${results[$name/gitpat]}" "${cpus[$name]}" <<'PY'
import statistics, sys
name, a, g, c = sys.argv[1], *[[float(x) for x in s.split()] for s in sys.argv[2:5]]
ma, mg, mc = statistics.median(a), statistics.median(g), statistics.median(c)
unit = "per request" if "req/s" in name else ""
print(f"{name:<24} {ma:10.3f} {mg:10.3f} {mg/ma:8.2f} {mc:14.4f} {unit}")
PY
done
python3 - "${results[client floor: 8 index-packs/apache]}" <<'PY'
import statistics, sys
print(f"{'client floor: 8 index-packs':<24} {statistics.median(float(x) for x in sys.argv[1].split()):10.3f}   (no server: what 8 concurrent clones cost the clients)")
PY
echo "gitpat peak RSS (server): $(awk '/VmHWM/ { print $2, $3 }' /proc/$gpid/status)"
echo "(for req/s a higher ratio is better; for times, lower)"

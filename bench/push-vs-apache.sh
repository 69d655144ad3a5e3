#!/usr/bin/env bash
# Benchmark: pushes to gitpat against git http-backend under Apache (the peer
# in ../shared/bench/peer-apache.sh), on this machine, in one interleaved
# run: a full push of a medium repository into an empty one, ten one-commit
# pushes, and a full push of a large repository, with gitpat's peak memory
# (VmHWM). Prints medians and the gitpat/Apache ratio.
#
# Needs: apache2 apache2-utils (Debian), a release build (cargo build --release).
# Usage: bench/push-vs-apache.sh [RUNS]     (default 5; the machine is noisy: medians)
#   MEDIUM=/path/to/repo   a real repository (e.g. a clone of ripgrep); default:
#                          a generated one of about 15k objects
#   LARGE=/path/to/repo    e.g. a clone of git.git; default: a generated one of
#                          about 300 MB (300 commits of 1 MiB of random bytes)
#   PEER_FSCK=1            the peer fscks what it receives (receive.fsckObjects),
#                          as gitpat always does; by default it does not
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
command -v apache2 >/dev/null || [ -x /usr/sbin/apache2 ] || { echo "apt-get install apache2 apache2-utils" >&2; exit 1; }

root=$(mktemp -d /tmp/gitpat-push-bench.XXXXXX)
cleanup() {
  bash "$peer" stop "$root" >/dev/null 2>&1 || true
  kill "$(cat "$root/gitpat.pid" 2>/dev/null)" 2>/dev/null || true
}
trap cleanup EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 HOME=$root
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

# --- The repositories to push: bare, heads and tags only. ---------------------
if [ -n "${MEDIUM:-}" ]; then
  $git clone -q --bare "$MEDIUM" "$root/medium.git"
else
  gen=$root/gen-medium
  $git init -q -b main "$gen"
  for c in $(seq 1 300); do
    for f in $(seq 1 16); do
      printf 'file %d version %d\n%s\n' "$f" "$c" "$(head -c 600 /dev/urandom | base64 -w 76)" >"$gen/f$((c % 40))-$f.txt"
    done
    $git -C "$gen" add -A && $git -C "$gen" commit -q -m "commit $c"
    [ $((c % 30)) = 0 ] && $git -C "$gen" tag "v$c"
  done
  $git clone -q --bare "$gen" "$root/medium.git"
fi
if [ -n "${LARGE:-}" ]; then
  $git clone -q --bare "$LARGE" "$root/large.git"
else
  gen=$root/gen-large
  $git init -q -b main "$gen"
  for c in $(seq 1 300); do
    head -c 1048576 /dev/urandom >"$gen/blob-$c.bin"
    $git -C "$gen" add -A && $git -C "$gen" commit -q -m "commit $c"
  done
  $git clone -q --bare "$gen" "$root/large.git"
fi
describe() { echo "$($git -C "$1" count-objects -v | awk '/in-pack/ {print $2}') objects, $(du -sh "$1" | cut -f1)"; }

# --- The servers. -------------------------------------------------------------
mkdir -p "$root/repos"
apache_port=18090
bash "$peer" start "$root" $apache_port
apache_base="http://alice:alice-password@127.0.0.1:$apache_port/git"
export GITPAT_DATA_DIR=$root/gitpat GITPAT_LOG=warn
"$gitpat" user create alice --email alice@example.com >/dev/null
token=$("$gitpat" token create --user alice --name bench --scopes api)
gitpat_port=18091
PATH=/usr/bin:/bin "$gitpat" serve --listen 127.0.0.1:$gitpat_port --pack-engine git >"$root/gitpat.log" 2>&1 &
echo $! >"$root/gitpat.pid"
for _ in $(seq 50); do curl -s -o /dev/null 127.0.0.1:$gitpat_port/-/liveness && break; sleep 0.1; done
gitpat_base="http://alice:$token@127.0.0.1:$gitpat_port/alice"
vmhwm() { awk '/VmHWM/ {print $2}' "/proc/$(cat "$root/gitpat.pid")/status"; }

# An empty repository NAME on the peer (gitpat creates one on the first push).
apache_empty() {
  $git init -q --bare "$root/repos/$1.git"
  $git -C "$root/repos/$1.git" config http.receivepack true
  # PEER_FSCK=1: the peer checks objects as gitpat always does (index-pack
  # --strict), for a comparison at equal safety, with the same old-history
  # quirks allowed.
  if [ "${PEER_FSCK:-0}" = 1 ]; then
    $git -C "$root/repos/$1.git" config receive.fsckObjects true
    for quirk in badFilemode zeroPaddedFilemode badTimezone missingSpaceBeforeDate; do
      $git -C "$root/repos/$1.git" config "receive.fsck.$quirk" ignore
    done
  fi
  chown -R www-data:www-data "$root/repos/$1.git"
}
url_of() { if [ "$1" = apache ]; then echo "$apache_base/$2.git"; else echo "$gitpat_base/$2.git"; fi; }

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }
declare -A results
record() { results[$1/$2]="${results[$1/$2]:-} $3"; }
full_push() { # SRC URL
  $git -C "$1" push -q "$2" 'refs/heads/*:refs/heads/*' 'refs/tags/*:refs/tags/*' >/dev/null 2>&1 \
    || { echo "push failed: $1 -> ${2//$token/TOKEN}" >&2; exit 1; }
}

rss_before=$(vmhwm)
for i in $(seq "$runs"); do
  for who in apache gitpat; do
    name=m-$who-$i
    [ $who = apache ] && apache_empty "$name"
    url=$(url_of $who "$name")
    t0=$(now); full_push "$root/medium.git" "$url"; record "full push (medium)" $who "$(since "$t0")"

    # Ten one-commit pushes on top of it, to a new branch.
    work=$root/work-$who-$i
    $git clone -q "$root/medium.git" "$work" 2>/dev/null
    # Only the pushes are timed, not the commits made between them.
    total=0
    for n in $(seq 10); do
      echo "change $n" >>"$work/bench-change.txt"
      $git -C "$work" add bench-change.txt && $git -C "$work" commit -q -m "small $n"
      t0=$(now)
      $git -C "$work" push -q "$url" HEAD:refs/heads/bench >/dev/null 2>&1 || { echo "small push failed" >&2; exit 1; }
      total=$(awk -v t="$total" -v d="$(since "$t0")" 'BEGIN { printf "%.4f", t + d }')
    done
    record "ten 1-commit pushes" $who "$total"
    rm -rf "$work"
  done
done
rss_medium=$(vmhwm)
large_runs=$(( runs < 3 ? runs : 3 ))
for i in $(seq "$large_runs"); do
  for who in apache gitpat; do
    name=l-$who-$i
    [ $who = apache ] && apache_empty "$name"
    t0=$(now); full_push "$root/large.git" "$(url_of $who "$name")"; record "full push (large)" $who "$(since "$t0")"
    rm -rf "$root/repos/$name.git" "$GITPAT_DATA_DIR/repositories/alice/$name.git"
  done
done
rss_large=$(vmhwm)

echo "medium: $(describe "$root/medium.git"); large: $(describe "$root/large.git")"
echo "$runs runs ($large_runs for the large push), alternating; medians in seconds; both servers on $(/usr/bin/git --version)"
printf '%-22s %10s %10s %8s\n' operation apache gitpat ratio
for name in "full push (medium)" "ten 1-commit pushes" "full push (large)"; do
  python3 - "$name" "${results[$name/apache]}" "${results[$name/gitpat]}" <<'PY'
import statistics, sys
name, a, g = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ma, mg = statistics.median(a), statistics.median(g)
print(f"{name:<22} {ma:10.3f} {mg:10.3f} {mg/ma:8.2f}")
PY
done
echo "gitpat peak RSS (VmHWM): $((rss_before / 1024)) MiB at start, $((rss_medium / 1024)) MiB after the medium pushes, $((rss_large / 1024)) MiB after the large ones"

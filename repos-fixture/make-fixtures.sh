#!/usr/bin/env bash
# Builds the fixture repositories into OUT (default: ./fixtures), the same
# object ids on every machine: a hermetic git environment and fixed dates.
#   basic      branches, a merge, annotated and lightweight tags, a binary file
#   empty      a bare repository with no commits
#   many-refs  1,500 branches and 100 tags over a chain of 50 commits
# Usage: repos-fixture/make-fixtures.sh [OUT]
set -eu -o pipefail
out=${1:-fixtures}
mkdir -p "$out"
out=$(cd "$out" && pwd)

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME=/nonexistent
export GIT_AUTHOR_NAME="Fixture Author" GIT_AUTHOR_EMAIL="author@example.com"
export GIT_COMMITTER_NAME="Fixture Committer" GIT_COMMITTER_EMAIL="committer@example.com"
export TZ=UTC LC_ALL=C
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
tick=1700000000
step() { tick=$((tick + 60)); export GIT_AUTHOR_DATE="@$tick +0000" GIT_COMMITTER_DATE="@$tick +0000"; }
g() { git -c init.defaultBranch=main -c core.autocrlf=false -c commit.gpgsign=false -c tag.gpgsign=false "$@"; }

rm -rf "$out/basic" "$out/empty" "$out/many-refs"

# basic
g init -q "$out/basic"
cd "$out/basic"
step; printf 'hello\n' > README; g add README; g commit -q -m "initial"
step; g tag v0.1                                     # lightweight
step; printf '\x00\x01\x02\xff\xfe binary\n' > blob.bin; mkdir -p src; printf 'fn main() {}\n' > src/main.rs
g add blob.bin src/main.rs; g commit -q -m "add a binary file and code"
step; g checkout -q -b feature
step; printf 'feature work\n' > feature.txt; g add feature.txt; g commit -q -m "feature: first"
step; printf 'more\n' >> feature.txt; g commit -q -am "feature: second"
step; g checkout -q main
step; printf 'hello, world\n' > README; g commit -q -am "main: edit README"
step; g merge -q --no-ff feature -m "merge feature"
step; g tag -a v1.0 -m "release 1.0"                 # annotated
step; g checkout -q -b topic HEAD~1
step; printf 'topic\n' > topic.txt; g add topic.txt; g commit -q -m "topic work"
g checkout -q main

# empty
g init -q --bare "$out/empty"

# many-refs
g init -q "$out/many-refs"
cd "$out/many-refs"
tree=$(g mktree < /dev/null)
parent=
commits=()
for i in $(seq 1 50); do
  step
  if [ -n "$parent" ]; then parent=$(g commit-tree "$tree" -p "$parent" -m "commit $i")
  else parent=$(g commit-tree "$tree" -m "commit $i"); fi
  commits+=("$parent")
done
{
  echo "create refs/heads/main ${commits[49]}"
  for i in $(seq 1 1500); do printf 'create refs/heads/branch-%04d %s\n' "$i" "${commits[$((i % 50))]}"; done
  for i in $(seq 1 100); do printf 'create refs/tags/tag-%03d %s\n' "$i" "${commits[$((i % 50))]}"; done
} | g update-ref --stdin
g symbolic-ref HEAD refs/heads/main
echo "$out"

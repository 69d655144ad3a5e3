#!/usr/bin/env bash
# Benchmark: the REST API's list endpoints at scale (issue 16). Seeds, by
# SQL, 1,000,000 tokens, 100,000 users, 100,000 projects and about 200,000
# memberships (with a 2,000-member project), runs a release gitpat on it,
# and prints p50/p99 of each list page (first page, a deep page, filters,
# keyset) timed by curl.
#
# Needs: curl, and sqlite3 (the default, SQLite) or psql (--postgres); a
# release build (cargo build --release; $CARGO_TARGET_DIR is followed).
# Usage: bench/api-scale.sh [--postgres URL] [RUNS]
#   --postgres URL  a PostgreSQL server (any database of it): a database
#                   gitpat_bench_<pid> is made there for the run and dropped
#   RUNS            requests per endpoint (default 100; the machine is
#                   noisy: percentiles)
#   TOKENS=, USERS=, PROJECTS=  smaller worlds (defaults 1000000, 100000,
#                   100000)
#   KEEP=1          keep the data directory (SQLite: <dir>/data/gitpat.db)
#                   and the PostgreSQL database, to look at the plans
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pg_url=
if [ "${1:-}" = --postgres ]; then
  pg_url=${2:?--postgres needs a URL}
  shift 2
fi
runs=${1:-100}
ntokens=${TOKENS:-1000000}
nusers=${USERS:-100000}
nprojects=${PROJECTS:-100000}
gitpat=${GITPAT:-${CARGO_TARGET_DIR:-$here/target}/release/gitpat}
[ -x "$gitpat" ] || { echo "build first: cargo build --release (no $gitpat)" >&2; exit 1; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
if [ -n "$pg_url" ]; then
  command -v psql >/dev/null || { echo "needs psql (apt-get install postgresql-client)" >&2; exit 1; }
else
  command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 1; }
fi

root=$(mktemp -d /tmp/gitpat-api-scale.XXXXXX)
db_name=gitpat_bench_$$
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then
    echo "kept $root${pg_url:+ and the database $db_name}" >&2
    return
  fi
  if [ -n "$pg_url" ]; then
    psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $db_name" >/dev/null 2>&1 || true
  fi
  rm -rf "$root"
}
trap cleanup EXIT

# The URL of the bench's own database: the given one's, renamed.
with_database() {
  local url=$1 name=$2 path query=
  path=${url%%\?*}
  [ "$path" != "$url" ] && query="?${url#*\?}"
  echo "${path%/*}/$name$query"
}

export GITPAT_DATA_DIR=$root/data
if [ -n "$pg_url" ]; then
  psql -q "$pg_url" -c "CREATE DATABASE $db_name" >/dev/null
  export GITPAT_DATABASE_URL
  GITPAT_DATABASE_URL=$(with_database "$pg_url" "$db_name")
  run_sql() { psql -q -v ON_ERROR_STOP=1 "$GITPAT_DATABASE_URL"; }
else
  run_sql() { sqlite3 -bail "$GITPAT_DATA_DIR/gitpat.db"; }
fi

# --- The world. -------------------------------------------------------------
# root (id 1, admin) and alice (id 2) through the CLI (which migrates), with
# tokens of known strings; the rest by SQL.
admin_token=glpat-bench-admin-token-0001
alice_token=glpat-bench-alice-token-0001
"$gitpat" user create root --email root@example.com --admin >/dev/null
"$gitpat" user create alice --email alice@example.com >/dev/null
"$gitpat" token create --user root --name bench --scopes api --token "$admin_token" >/dev/null
"$gitpat" token create --user alice --name bench --scopes api --token "$alice_token" >/dev/null

# The dialects: a series of i, a time and a date from epoch seconds, 64 hex
# digits from i, insert-or-skip.
if [ -n "$pg_url" ]; then
  series() { echo "generate_series(1, $1) AS s(i)"; }
  ts() { echo "(to_timestamp($1) AT TIME ZONE 'UTC')"; }
  day() { echo "(to_timestamp($1) AT TIME ZONE 'UTC')::date"; }
  hex64() { echo "lpad(to_hex($1), 64, '0')"; }
  skip_dup=" ON CONFLICT DO NOTHING"
  insert_skip="INSERT INTO"
  from_series() { echo "FROM $(series "$1")"; }
  analyze="ANALYZE;"
else
  ts() { echo "strftime('%Y-%m-%d %H:%M:%S', $1, 'unixepoch')"; }
  day() { echo "date($1, 'unixepoch')"; }
  hex64() { echo "printf('%064x', $1)"; }
  skip_dup=""
  insert_skip="INSERT OR IGNORE INTO"
  # A recursive CTE as the series (sqlite3 has no generate_series here).
  from_series() { echo "FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1) SELECT i FROM s) AS s"; }
  analyze="ANALYZE;"
fi

# Users 3..: user<i> (id i + 2), names in ties, one in 50 blocked.
user_of() { echo "(3 + (($1) % $nusers))"; }
seed_start=$(date +%s)
run_sql <<SQL
BEGIN;
INSERT INTO users (username, email, name, is_admin, state, two_factor_enabled, created_at)
  SELECT 'user' || i, 'user' || i || '@example.com', 'User ' || (i % 50000), FALSE,
         CASE WHEN i % 50 = 0 THEN 'blocked' ELSE 'active' END, FALSE, $(ts "1600000000 + i * 600")
  $(from_series "$nusers");
-- Projects: owned by a user (alice every 1000th), every visibility.
INSERT INTO projects (path, name, description, owner_id, visibility, default_branch, created_at, last_activity_at)
  SELECT CASE WHEN i % 1000 = 0 THEN 'alice' ELSE 'user' || ($(user_of "i * 7") - 2) END || '/p' || i,
         'Project ' || (i % 5000), NULL,
         CASE WHEN i % 1000 = 0 THEN 2 ELSE $(user_of "i * 7") END,
         CASE i % 3 WHEN 0 THEN 'private' WHEN 1 THEN 'internal' ELSE 'public' END, 'main',
         $(ts "1650000000 + i * 300"), $(ts "1700000000 + ((i * 7919) % 5000000)")
  $(from_series "$nprojects");
-- Members: 2,000 in project 1; alice in one project of 500; one more in each.
INSERT INTO project_members (project_id, user_id, access_level, created_at)
  SELECT 1, 2 + i, 30, $(ts "1660000000 + i") $(from_series 2000);
$insert_skip project_members (project_id, user_id, access_level, created_at, expires_at)
  SELECT i, 2, 10 * (1 + i % 5), $(ts "1660000000 + i"), CASE WHEN i % 7 = 0 THEN $(day "1600000000") ELSE NULL END
  $(from_series "$nprojects") WHERE i % 500 = 1$skip_dup;
$insert_skip project_members (project_id, user_id, access_level, created_at)
  SELECT i, $(user_of "i * 13"), 30, $(ts "1660000000 + i") $(from_series "$nprojects") WHERE i > 1$skip_dup;
-- Tokens: alice every 1000th, else spread over the users; names in four
-- families; a quarter never expiring, one in 20 revoked, a third never used.
INSERT INTO personal_access_tokens (user_id, name, scopes, token_digest, created_at, expires_at, revoked, last_used_at, impersonation)
  SELECT CASE WHEN i % 1000 = 0 THEN 2 ELSE $(user_of i) END,
         CASE i % 4 WHEN 0 THEN 'Deploy ' || (i % 997) WHEN 1 THEN 'ci-' || (i % 997) WHEN 2 THEN 'laptop' ELSE 'backup ' || (i % 13) END,
         'api', $(hex64 i), $(ts "1700000000 + i * 30"),
         CASE WHEN i % 4 = 0 THEN NULL ELSE $(day "1700000000 + i * 30 + (i % 400) * 86400") END,
         CASE WHEN i % 20 = 0 THEN TRUE ELSE FALSE END,
         CASE WHEN i % 3 = 0 THEN NULL ELSE $(ts "1700000000 + i * 30 + 3600") END,
         CASE WHEN i % 100 = 50 THEN TRUE ELSE FALSE END
  $(from_series "$ntokens");
COMMIT;
$analyze
SQL
echo "seeded $ntokens tokens, $nusers users, $nprojects projects in $(($(date +%s) - seed_start)) s ($([ -n "$pg_url" ] && echo PostgreSQL || echo SQLite))"

# --- The server. ------------------------------------------------------------
port=$(( 20000 + $$ % 20000 ))
base=http://127.0.0.1:$port/api/v4
"$gitpat" serve --listen "127.0.0.1:$port" >"$root/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/-/readiness" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/-/readiness" >/dev/null || { cat "$root/serve.log" >&2; exit 1; }

# measure LABEL PATH [TOKEN]: RUNS requests (after 3 to warm up); p50, p99.
printf '| %-58s | %8s | %8s |\n' "list page (per_page=20)" "p50 ms" "p99 ms"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..60})" "----------" "----------"
measure() {
  local label=$1 path=$2 tok=${3-$admin_token} hdr=() code
  [ -n "$tok" ] && hdr=(-H "PRIVATE-TOKEN: $tok")
  code=$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" "$base$path")
  [ "$code" = 200 ] || { echo "GET $path: $code" >&2; exit 1; }
  for _ in 1 2; do curl -s -o /dev/null "${hdr[@]}" "$base$path"; done
  for _ in $(seq 1 "$runs"); do
    curl -s -o /dev/null -w '%{time_total}\n' "${hdr[@]}" "$base$path"
  done | sort -n | awk -v label="$label" '
    { t[NR] = $1 * 1000 }
    END {
      p50 = t[int((NR + 1) * 0.50)]; i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
      printf "| %-58s | %8.1f | %8.1f |\n", label, p50, t[i99]
    }'
}

measure "tokens, admin, page 1" "/personal_access_tokens?per_page=20"
measure "tokens, admin, page 5000 (offset 99,980)" "/personal_access_tokens?per_page=20&page=5000"
measure "tokens, admin, state=active" "/personal_access_tokens?per_page=20&state=active"
measure "tokens, admin, revoked=true&sort=created_desc" "/personal_access_tokens?per_page=20&revoked=true&sort=created_desc"
measure "tokens, admin, sort=expires_asc" "/personal_access_tokens?per_page=20&sort=expires_asc"
measure "tokens, admin, sort=name_asc, page 100" "/personal_access_tokens?per_page=20&sort=name_asc&page=100"
measure "tokens, admin, search=deploy (25% of rows)" "/personal_access_tokens?per_page=20&search=deploy"
measure "tokens, admin, search=ci-99 (0.2%: counted by scan)" "/personal_access_tokens?per_page=20&search=ci-99"
measure "tokens, admin, user_id=alice (1,001 rows)" "/personal_access_tokens?per_page=20&user_id=2"
measure "tokens, alice, page 1" "/personal_access_tokens?per_page=20" "$alice_token"
measure "tokens, alice, page 40, sort=last_used_desc" "/personal_access_tokens?per_page=20&page=40&sort=last_used_desc" "$alice_token"
measure "users, admin, page 1" "/users?per_page=20"
measure "users, admin, page 2500 (offset 49,980)" "/users?per_page=20&page=2500"
measure "users, admin, order_by=name&sort=asc" "/users?per_page=20&order_by=name&sort=asc"
measure "users, admin, order_by=username, page 1000" "/users?per_page=20&order_by=username&page=1000"
measure "users, admin, blocked=true" "/users?per_page=20&blocked=true"
measure "users, admin, search=user1234" "/users?per_page=20&search=user1234"
measure "users, admin, username=user777" "/users?per_page=20&username=user777"
measure "users, alice (no blocked), page 1" "/users?per_page=20" "$alice_token"
measure "users, keyset id desc, id_before=50000" "/users?pagination=keyset&order_by=id&sort=desc&per_page=20&id_before=50000"
measure "projects, admin, page 1 (created_at desc)" "/projects?per_page=20"
measure "projects, admin, page 2500 (offset 49,980)" "/projects?per_page=20&page=2500"
measure "projects, admin, order_by=name&sort=asc" "/projects?per_page=20&order_by=name&sort=asc"
measure "projects, admin, order_by=last_activity_at" "/projects?per_page=20&order_by=last_activity_at"
measure "projects, admin, visibility=public" "/projects?per_page=20&visibility=public"
measure "projects, admin, search=p4242" "/projects?per_page=20&search=p4242"
measure "projects, alice, page 1 (visibility rules)" "/projects?per_page=20" "$alice_token"
measure "projects, alice, page 1000 (visibility rules)" "/projects?per_page=20&page=1000" "$alice_token"
measure "projects, alice, membership=true" "/projects?per_page=20&membership=true" "$alice_token"
measure "projects, alice, owned=true" "/projects?per_page=20&owned=true" "$alice_token"
measure "projects, alice, min_access_level=30" "/projects?per_page=20&min_access_level=30" "$alice_token"
measure "projects, anonymous, page 1 (public)" "/projects?per_page=20" ""
measure "projects, keyset id asc, id_after=50000" "/projects?pagination=keyset&order_by=id&sort=asc&per_page=20&id_after=50000"
measure "members of a 2,000-member project, page 1" "/projects/1/members?per_page=20"
measure "members, page 100 (offset 1,980)" "/projects/1/members?per_page=20&page=100"
measure "members, query=user19" "/projects/1/members?per_page=20&query=user19"

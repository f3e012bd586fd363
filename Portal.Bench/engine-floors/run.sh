#!/usr/bin/env bash
# What the database engines themselves do on this machine for the audit trail's write paths, with no Portal code
# involved: the floors behind the ingest (issue 3 #1) and archive (issue 7) figures in BENCHMARKS.md.
#   Portal.Bench/engine-floors/run.sh sqlite              # sqlite3 shell; ~3 min
#   Portal.Bench/engine-floors/run.sh postgres            # needs psql/pgbench and PGHOST/PGPORT/PGUSER of a server,
#                                                         # plus the Release build of Portal.Bench (for the schema)
# Needs: python3, sqlite3 (SQLite), psql + pgbench (PostgreSQL).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/engine-floors.XXXX)
trap 'rm -rf "$work"' EXIT
rate() { python3 -c "import sys; print(f'{int(float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))):,}')" "$@"; }

fsync_latency() {
  python3 - "$work/f" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
for size, n in ((4096, 300), (262144, 100)):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); os.write(fd, b'x' * size); os.fdatasync(fd); ts.append(time.perf_counter() - t)
    ts.sort(); print(f'  append {size // 1024} KB + fdatasync: p50 {ts[n // 2] * 1e3:.3f} ms')
PY
}

sqlite_floors() {
  echo "== sqlite3 $(sqlite3 --version | cut -d' ' -f1): 102,400 rows into audit_events, WAL, synchronous=FULL, one transaction per batch"
  fsync_latency
  for cfg in "none 64" "time,type,level 64" "time,type,actor,session,email,level 64" "none 1024" "time,type,actor,session,email,level 1024"; do
    set -- $cfg
    rm -f "$work"/t.db*
    python3 "$here/sqlite_rows.py" "$1" "$2" > "$work/in.sql"
    s=$(date +%s.%N); sqlite3 "$work/t.db" < "$work/in.sql" > /dev/null; e=$(date +%s.%N)
    printf '  %-40s %5s rows/commit: %9s rows/s\n' "indexes: $1" "$2" "$(rate 102400 "$s" "$e")"
  done
  echo "== sqlite3: delete 1,000,000 rows of one project (the archive's delete), 1 GB page cache, one transaction"
  rm -f "$work"/t.db*
  python3 - "$here" > "$work/in.sql" <<'PY'
import subprocess, sys
# one project, so the delete covers every row; indexes built after the load (quicker to set up)
script = subprocess.run([sys.executable, sys.argv[1] + '/sqlite_rows.py', 'none', '8192', '1000000', 'late'],
                        capture_output=True, text=True, check=True).stdout
print(script.replace("substr('0000000' || (n % 8), -8)", "'00000000'").replace('n/8,', 'n,'))
PY
  sqlite3 "$work/t.db" < "$work/in.sql" > /dev/null
  cp "$work/t.db" "$work/u.db"
  sqlite3 "$work/u.db" "DROP INDEX ix_audit_events_project_id_session_id_occurred_at; DROP INDEX ix_audit_events_project_id_actor_email_occurred_at; DROP INDEX ix_audit_events_project_id_actor_id_occurred_at;"
  for f in t u; do
    sync
    s=$(date +%s.%N)
    sqlite3 "$work/$f.db" "PRAGMA synchronous=FULL; PRAGMA cache_size=-1000000; BEGIN; DELETE FROM audit_events WHERE project_id = '00000000-aaaa-bbbb-cccc-dddddddddddd' AND seq < 1000000; COMMIT;" > /dev/null
    e=$(date +%s.%N)
    printf '  %-52s %9s rows/s\n' "$([ $f = t ] && echo 'all six search indexes (as shipped)' || echo 'without the actor, e-mail and session indexes')" "$(rate 1000000 "$s" "$e")"
  done
}

postgres_floors() {
  db=engine_floors_$$
  bench=${PORTAL_BENCH_DLL:-$here/../bin/Release/net10.0/Portal.Bench.dll}
  psql -qc "CREATE DATABASE $db"
  trap 'psql -qc "DROP DATABASE IF EXISTS $db" || true; rm -rf "$work"' EXIT
  echo "== PostgreSQL $(psql -Atc 'SHOW server_version' | cut -d' ' -f1): fsync=$(psql -Atc 'SHOW fsync'), synchronous_commit=$(psql -Atc 'SHOW synchronous_commit')"
  # The real schema and 200,000 real events (the product's writer), then copies of them without client work.
  dotnet "$bench" audit-seed postgres "Host=${PGHOST:-127.0.0.1};Port=${PGPORT:-5432};Username=${PGUSER:-postgres};Database=$db" 200000 > /dev/null
  cols=$(psql -d "$db" -Atc "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'audit_events'")
  idx=$(psql -d "$db" -Atc "SELECT string_agg(replace(replace(indexdef, ' ON public.audit_events ', ' ON x_all '), ' ON ONLY public.audit_events ', ' ON x_all ') , '; ') FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'audit_events'" | sed -E 's/INDEX [a-z_]+ ON/INDEX ON/g')
  psql -d "$db" -q <<SQL
CREATE UNLOGGED TABLE src AS SELECT row_number() OVER () AS n, $cols FROM audit_events;
CREATE INDEX ON src (n); ANALYZE src;
CREATE SEQUENCE floor_rows;
CREATE TABLE x_none (LIKE audit_events INCLUDING DEFAULTS);
CREATE TABLE x_all (LIKE audit_events INCLUDING DEFAULTS);
$idx;
SQL
  echo "  indexes on x_all: $(psql -d "$db" -Atc "SELECT count(*) FROM pg_indexes WHERE tablename = 'x_all'") (those of audit_events; x_all is not partitioned)"
  fresh_seq="nextval('floor_rows')"
  for t in x_none x_all; do
    s=$(date +%s.%N); psql -d "$db" -qc "INSERT INTO $t SELECT $cols FROM src" ; e=$(date +%s.%N)
    printf '  %-60s %9s rows/s\n' "$t: all 200,000 rows in one INSERT ... SELECT" "$(rate 200000 "$s" "$e")"
    psql -d "$db" -qc "TRUNCATE $t"
    # a fresh seq per row from a sequence keeps the primary key unique however often a batch is picked
    printf '\\set s random(0, 3000)\nINSERT INTO %s SELECT %s FROM src WHERE n BETWEEN :s * 64 + 1 AND :s * 64 + 64;\n' "$t" "${cols/,seq,/,$fresh_seq,}" > "$work/$t.sql"
    for c in 1 8; do
      out=$(pgbench -n -M prepared -c $c -j 2 -T 10 -f "$work/$t.sql" "$db" 2>&1) || { echo "$out" >&2; exit 1; }
      tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' <<< "$out")
      printf '  %-60s %9s rows/s\n' "$t: 64-row durable transactions, $c client(s) (pgbench)" "$(python3 -c "print(f'{int(float(\"$tps\") * 64):,}')")"
    done
  done
}

case "${1:-}" in
  sqlite) sqlite_floors ;;
  postgres) postgres_floors ;;
  *) echo "usage: $0 sqlite|postgres" >&2; exit 2 ;;
esac

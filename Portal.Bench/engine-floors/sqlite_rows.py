#!/usr/bin/env python3
"""Prints a sqlite3 script that loads audit rows shaped like Portal.Bench's events (8 projects, 97 actors,
1,013 sessions; every value generated in SQL, so no .NET code is involved) into the real audit_events schema
(Database/sqlite/0002 and 0011), WAL with synchronous=FULL, one transaction per batch.

usage: sqlite_rows.py <indexes> <rows-per-commit> [rows=102400] [late-indexes]
  indexes       comma list of time,type,actor,session,email,level or "none" (created before loading)
  late-indexes  "late" creates all six after loading (to build a file for the delete measurement)
"""
import os, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'Database', 'sqlite')
keep = sys.argv[1].split(',') if sys.argv[1] != 'none' else []
per = int(sys.argv[2])
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 102400
late = len(sys.argv) > 4 and sys.argv[4] == 'late'
schema = open(os.path.join(root, '0002_audit.sql')).read().split('-- The last link')[0]
lines = schema.split('\n')
table = '\n'.join(l for l in lines if not l.startswith('CREATE INDEX'))
indexes = [l for l in lines if l.startswith('CREATE INDEX')] + \
          [l.strip() for l in open(os.path.join(root, '0011_audit_search_indexes.sql')) if l.startswith('CREATE INDEX')]
names = {'time': 'project_id_occurred_at"', 'type': 'event_type_occurred', 'actor': 'actor_id_occ',
         'session': 'session_id', 'email': 'actor_email', 'level': 'security_level'}
out = ['PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;', table]
for k in keep:
    out += [i for i in indexes if names[k] in i]
pid = "substr('0000000' || (n % 8), -8) || '-aaaa-bbbb-cccc-dddddddddddd'"
for lo in range(0, rows, per):
    hi = min(rows, lo + per) - 1
    out.append(f"""BEGIN IMMEDIATE; WITH RECURSIVE r(n) AS (SELECT {lo} UNION ALL SELECT n+1 FROM r WHERE n < {hi})
INSERT INTO audit_events SELECT {pid}, n/8, lower(hex(randomblob(16))), randomblob(32), randomblob(32), 638000000000000000 + n*10000,
 'query.executed', 'query', 'q-' || (n%500), 'execute', 'user', 'user-' || (n % 97), 'analyst' || (n%97) || '@example.com', 'analyst', 'sess-' || (n % 1013),
 '{{"params":{{"region":"EU","limit":100}},"response":{{"rows":' || (n%1000) || ',"truncated":false}}}}', NULL, NULL, 'Show revenue by region for last quarter',
 'SELECT region, sum(amount) FROM sales WHERE quarter = @q GROUP BY region', '["sales"]', 1, NULL, n%250, n%1000, CASE WHEN n%50=0 THEN 'warning' ELSE 'normal' END, '["internal"]',
 '10.1.2.3', 'Mozilla/5.0 (X11; Linux x86_64) portal-bench', 'req-' || n FROM r; COMMIT;""")
if late:
    out += indexes
print('\n'.join(out))

#!/usr/bin/env bash
# Runs every test on SQLite and PostgreSQL with real Chromium. On a fresh machine it installs what the tests need
# (Chromium, poppler-utils, PostgreSQL 15 server binaries), starts a throwaway PostgreSQL on 127.0.0.1 and stops it
# afterwards. Usage: ./test.sh [extra dotnet test arguments, e.g. --filter FullyQualifiedName~Members]
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || need_apt+=(postgresql)
fc-list 2>/dev/null | grep -qi dejavu || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing: ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# Throwaway PostgreSQL on a free loopback port, owned by an unprivileged user (postgres refuses to run as root).
PGROOT=$(mktemp -d /tmp/portal-pg.XXXXXX)
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$PGROOT"
  RUNAS=(runuser -u postgres --)
fi
"${RUNAS[@]}" "$PGBIN/initdb" -D "$PGROOT/data" -A trust -U postgres >/dev/null
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w \
  -o "-p $PGPORT -k $PGROOT -h 127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
stop_pg() { "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PGROOT"; }
trap stop_pg EXIT
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT"

export PORTAL_TEST_PG="Host=127.0.0.1;Port=$PGPORT;Username=postgres;Pooling=true"
export PORTAL_CHROMIUM=${PORTAL_CHROMIUM:-$(command -v chromium)}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

RESULTS="$ROOT/test-results"
rm -rf "$RESULTS"; mkdir -p "$RESULTS"
set +e
dotnet test Portal.Tests/Portal.Tests.csproj -c Release -p:CI="${CI:-false}" \
  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory "$RESULTS" "$@"
status=$?
set -e

# One plain closing line with the counts, read from the run's own results file.
if [ -f "$RESULTS/results.trx" ]; then
  python3 - "$RESULTS/results.trx" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
c = ET.parse(sys.argv[1]).getroot().find("t:ResultSummary/t:Counters", ns)
passed, failed = int(c.get("passed")), int(c.get("failed")) + int(c.get("error")) + int(c.get("timeout")) + int(c.get("aborted"))
skipped = int(c.get("notExecuted"))
# Failed tests are repeated here with the first lines of their message, so the end of the log names them.
for r in ET.parse(sys.argv[1]).getroot().iter("{%s}UnitTestResult" % ns["t"]):
    if r.get("outcome") not in ("Passed", "NotExecuted"):
        msg = r.find("t:Output/t:ErrorInfo/t:Message", ns)
        text = (msg.text or "").strip().splitlines() if msg is not None else []
        print(f"FAILED {r.get('testName')} ({r.get('outcome')})")
        for line in text[:6]:
            print(f"    {line[:300]}")
print(f"Tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
fi
exit $status

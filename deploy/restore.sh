#!/usr/bin/env bash
# Restore a backup made by backup.sh into a new, empty data folder (one machine).
#
#   deploy/restore.sh [--keys-from DIR | --no-master-key] BACKUP.tar DATA_DIR
#
# The keys come from the backup when it holds them (backup.sh --with-keys), else from DIR
# (a folder with master.key and, if you have it, secret.key). Without a master key the
# restore refuses, unless --no-master-key: the server then makes a new key on its first
# start, and logins, contacts and files work, but every stored chat is lost: history,
# sending and the conversation list fail for every account with a contact from before.
# Without secret.key everyone is logged out, and names of ended accounts that were held
# back come free at once. Blobs go to DATA_DIR/blobs (GHOSTCACHE_BLOB_DIR when set).
# Then start the server on DATA_DIR: `ghostcache serve` applies any newer migrations.
set -euo pipefail
umask 077

usage() {
  sed -n '2,4p' "$0" >&2
  exit 2
}
KEYS_FROM=""
NO_MASTER_KEY=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keys-from)
      [ $# -ge 2 ] || usage
      KEYS_FROM=$2
      shift
      ;;
    --no-master-key) NO_MASTER_KEY=1 ;;
    -h | --help) usage ;;
    -*)
      echo "restore: unknown option $1" >&2
      usage
      ;;
    *) args+=("$1") ;;
  esac
  shift
done
[ ${#args[@]} -eq 2 ] || usage
BACKUP=${args[0]}
DATA=${args[1]}
BLOBS=${GHOSTCACHE_BLOB_DIR:-$DATA/blobs}
PYTHON=${PYTHON:-python3}

fail() {
  echo "restore: $*" >&2
  exit 1
}
[ -f "$BACKUP" ] || fail "no backup file $BACKUP"
if [ -e "$DATA" ] && [ -n "$(ls -A "$DATA")" ]; then
  fail "$DATA is not empty: restore into a new folder (never over a running server's data)"
fi
if [ -e "$BLOBS" ] && [ -n "$(ls -A "$BLOBS")" ]; then
  fail "the blob folder $BLOBS is not empty"
fi
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON)"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
tar -C "$STAGE" -xf "$BACKUP"
shopt -s nullglob
found=("$STAGE"/ghostcache-backup-*/)
[ ${#found[@]} -eq 1 ] || fail "$BACKUP is not a backup made by backup.sh"
SRC=${found[0]%/}
[ -f "$SRC/ghostcache.db" ] || fail "$BACKUP holds no database"

# Where the keys come from, decided before anything is written.
KEYS=""
if [ -f "$SRC/keys/master.key" ]; then
  KEYS=$SRC/keys
elif [ -n "$KEYS_FROM" ]; then
  [ -f "$KEYS_FROM/master.key" ] || fail "no master.key in $KEYS_FROM"
  KEYS=$KEYS_FROM
elif [ "$NO_MASTER_KEY" = 0 ]; then
  fail "the backup holds no keys. Give --keys-from DIR (the folder with master.key), or
         --no-master-key to start without it: every stored chat would be lost."
fi

"$PYTHON" - "$SRC/ghostcache.db" <<'EOF'
import sqlite3
import sys

check = sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0]
if check != "ok":
    sys.exit(f"restore: the database in the backup fails its integrity check: {check}")
EOF

mkdir -p "$DATA" "$BLOBS"
chmod 700 "$DATA" "$BLOBS"
cp -p "$SRC/ghostcache.db" "$DATA/ghostcache.db"
chmod 600 "$DATA/ghostcache.db"
blobs=0
for blob in "$SRC"/blobs/*; do
  cp -p "$blob" "$BLOBS/"
  blobs=$((blobs + 1))
done
if [ -n "$KEYS" ]; then
  for key in master.key secret.key; do
    if [ -f "$KEYS/$key" ]; then
      cp "$KEYS/$key" "$DATA/$key"
      chmod 600 "$DATA/$key"
    fi
  done
fi
echo "restore: $DATA ready (database, $blobs blobs$([ -n "$KEYS" ] && echo ', keys'))"
if [ -z "$KEYS" ]; then
  echo "restore: no master key: the server makes a new one, and stored chats cannot be read."
elif [ ! -f "$DATA/secret.key" ]; then
  echo "restore: no secret.key: the server makes a new one; everyone logs in again."
fi

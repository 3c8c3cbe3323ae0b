#!/usr/bin/env bash
# g. a repair run as root keeps every file's owner, group and mode: data dir 65534:65534, dirs 0750,
#    segments 0640, one flipped byte (small-clean--flip-byte, 2.42). The main container is
#    `walfix check` (as 65534), which must find the repaired WAL clean. Only walfix-backup/ may be new:
#    dirs 0700, files 0600, owned 65534:65534 like the data dir.
. "$(dirname "$0")/../lib.sh"
setup g 19107
copy_corpus small-clean--flip-byte "$DATA" || finish
chown -R 65534:65534 "$DATA"
find "$DATA" -type d -exec chmod 0750 {} + ; find "$DATA" -type f -exec chmod 0640 {} +
stat_list "$DATA" >"$DIR/stat-before"
INIT_UID=0 INIT_GID=0
MAIN_NAME=check MAIN_IMAGE=$WALFIX_IMAGE MAIN_ARGS='["check", "/prometheus"]'
write_pod '["preflight", "/prometheus"]'
play
expect_init 0
if started "$NAME-check" && wait_exit "$NAME-check" 30; then
  podman logs "$NAME-check" >"$DIR/check.log" 2>&1
  rc=$(podman inspect "$NAME-check" --format '{{.State.ExitCode}}')
  say "walfix check after the repair: exit $rc ($(grep -i verdict "$DIR/check.log" | head -1))"
  [ "$rc" = 0 ] || fail "walfix check after the repair exits $rc: $(tail -3 "$DIR/check.log" | tr '\n' ' ')"
else
  fail "the check container did not run ($(state "$NAME-check"))"
fi
stat_list "$DATA" >"$DIR/stat-after"
# every path that existed keeps uid gid mode; every new one is under walfix-backup/
while read -r u g m p; do
  a=$(awk -v p="$p" '$4 == p' "$DIR/stat-after")
  if [ -z "$a" ]; then fail "removed: ${p:-.}"
  elif [ "$a" != "$u $g $m $p" ]; then fail "changed: '${p:-.}' $u $g $m -> ${a% *}"; fi
done <"$DIR/stat-before"
new=$(awk 'NR==FNR {seen[$4]=1; next} !($4 in seen)' "$DIR/stat-before" "$DIR/stat-after")
if [ -z "$new" ]; then
  fail "no walfix-backup/ after a repair"
else
  say "new: $(echo "$new" | tr '\n' ';')"
  while read -r u g m p; do
    case "$p" in walfix-backup|walfix-backup/*) ;; *) fail "new file outside walfix-backup/: $u $g $m $p"; continue ;; esac
    if [ -d "$DATA/$p" ]; then want=700; else want=600; fi
    [ "$u $g $m" = "65534 65534 $want" ] || fail "backup $p is $u:$g $m, expected 65534:65534 $want"
  done <<<"$new"
fi
finish

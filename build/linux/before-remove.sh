#!/bin/sh
# Runs before the ClinicSync package's files are removed (the deb's prerm): stops the service,
# then takes ClinicSync out of each node's database with "clinic-sync uninstall", so no trigger is
# left behind in a clinic's database. Nothing happens on an upgrade. A failure is reported and
# never blocks the removal.
#
# CLINIC_SYNC_CLI and CLINIC_SYNC_ROOT exist for the test of this script (a stand-in command and
# a stand-in file system root).
set -u
case "${1:-remove}" in
  remove | purge) ;;
  *) exit 0 ;;
esac

CLI="${CLINIC_SYNC_CLI:-/usr/bin/clinic-sync}"
ROOT="${CLINIC_SYNC_ROOT:-}"
UNIT="$ROOT/etc/systemd/system/clinic-sync.service"
[ -x "$CLI" ] || exit 0

say() { echo "ClinicSync: $*" >&2; }

# Runs the command as the node's owner, who can read its 0600 secrets.
as_user() {
  user=$1
  shift
  if [ "$(id -u)" = "$(id -u "$user" 2>/dev/null)" ]; then
    "$@"
  else
    runuser -u "$user" -- "$@"
  fi
}

# Removes ClinicSync's triggers and tables from the database of the node in home $1, owned by $2.
uninstall_node() {
  home=$1
  owner=$2
  [ -f "$home/settings.json" ] || return 0
  if ! db=$(as_user "$owner" "$CLI" --home "$home" config get db); then
    say "could not read the settings in $home; run \"clinic-sync --home $home uninstall --db URL\"."
    return 0
  fi
  if as_user "$owner" "$CLI" --home "$home" uninstall --db "$db"; then
    return 0
  fi
  say "could not remove ClinicSync from $db (node $home); run \"clinic-sync --home $home uninstall --db $db\" as $owner, or open ClinicSync as $owner and remove it there."
}

service_home=""
if [ -f "$UNIT" ]; then
  service_home=$(sed -n 's/^ExecStart=.* --home //p' "$UNIT" | sed 's/^"\(.*\)"$/\1/')
  service_user=$(sed -n 's/^User=//p' "$UNIT")
  "$CLI" --home "${service_home:-/}" service uninstall || say "could not remove the service; run \"clinic-sync service uninstall\"."
  [ -n "$service_home" ] && uninstall_node "$service_home" "${service_user:-root}"
fi

for dir in "$ROOT"/home/* "$ROOT/root"; do
  home="$dir/.config/clinic-sync"
  [ -f "$home/settings.json" ] || continue
  [ "$home" = "$service_home" ] && continue
  uninstall_node "$home" "$(stat -c %U "$home")"
  rm -f "$dir/.config/autostart/clinicsync.desktop"
done
exit 0

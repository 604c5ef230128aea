#!/usr/bin/env bash
# Make sure a PostgreSQL server (Debian's packages) is installed, for tests that start a throwaway
# server of their own (integration_tests/postgres_server.py). Prints the directory holding initdb
# and pg_ctl on stdout, one line; everything else goes to stderr.
#
# Usage: scripts/ensure_postgres.sh
#
# Environment:
#   PG_VERSION   major version wanted when several are installed (default: 15 if present, else
#                the newest one found)
#
# When no initdb is found under /usr/lib/postgresql/*/bin it runs `apt-get update` and
# `apt-get install -y postgresql` (as root, or through `sudo -n`). It never skips: a machine where
# PostgreSQL is missing and cannot be installed makes it fail with a message saying why.
# Debian's package also creates the `postgres` OS user, which runs the server when the tests run
# as root (PostgreSQL refuses to run as root).
set -euo pipefail

say() { echo "ensure_postgres: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

find_bindir() {
    local wanted=${PG_VERSION:-} dir best="" best_version=-1 version
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] || continue
        version=$(basename "$(dirname "$dir")")
        [[ $version =~ ^[0-9]+$ ]] || continue
        if [ -n "$wanted" ]; then
            [ "$version" = "$wanted" ] && { echo "$dir"; return 0; }
        elif [ "$version" = 15 ]; then
            echo "$dir"; return 0
        elif [ "$version" -gt "$best_version" ]; then
            best=$dir best_version=$version
        fi
    done
    [ -n "$best" ] && [ -z "$wanted" ] && { echo "$best"; return 0; }
    return 1
}

if bindir=$(find_bindir); then
    echo "$bindir"
    exit 0
fi

say "no PostgreSQL server found under /usr/lib/postgresql/*/bin${PG_VERSION:+ (version $PG_VERSION)}: installing it with apt-get"
command -v apt-get >/dev/null 2>&1 \
    || die "PostgreSQL is not installed and this machine has no apt-get. Install the PostgreSQL server (initdb, pg_ctl) under /usr/lib/postgresql/VERSION/bin, e.g. Debian's 'postgresql' package."
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    die "PostgreSQL is not installed, and installing it needs root: run 'apt-get install -y postgresql' as root, or run the tests as root or with password-less sudo."
fi

package=postgresql
[ -n "${PG_VERSION:-}" ] && package=postgresql-$PG_VERSION
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update >&2 \
    || die "'apt-get update' failed (see above): cannot install PostgreSQL without the package lists."
"${as_root[@]}" apt-get install -y --no-install-recommends "$package" >&2 \
    || die "'apt-get install -y $package' failed (see above)."

bindir=$(find_bindir) \
    || die "'apt-get install $package' succeeded but no initdb appeared under /usr/lib/postgresql/*/bin${PG_VERSION:+ for version $PG_VERSION}."
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    die "PostgreSQL is installed but there is no 'postgres' OS user to run it as (PostgreSQL refuses to run as root)."
fi
say "installed: $("$bindir/initdb" --version)"
echo "$bindir"

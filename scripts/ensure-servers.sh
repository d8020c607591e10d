#!/usr/bin/env bash
# Makes sure the databases the tests talk to are reachable:
#   PostgreSQL on 127.0.0.1:5432: user postgres without a password (trust), database test
#   MariaDB    on 127.0.0.1:3306: user root with an empty password, database test
# plus the clients the tests and benchmarks call (psql, pg_isready, pgbench, mariadb-admin) and the
# drivers of the client-compatibility tests (pgJDBC, MariaDB Connector/J, a JDK, psycopg 2 and 3).
#
# Installed but stopped: start it and wait until it answers. Not installed: as root, install it
# with apt-get (Debian/Ubuntu) and configure it as above; otherwise say exactly what to install.
# A server that already answers is never restarted or reconfigured. Safe to run any number of times.
set -euo pipefail

readonly PG_HOST=127.0.0.1 PG_PORT=5432
readonly MY_HOST=127.0.0.1 MY_PORT=3306
readonly WAIT_S=60

log() { echo "ensure-servers: $*"; }
die() { echo "ensure-servers: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# A bare TCP connect: tells "something listens" without needing any client installed.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# The newest PostgreSQL major version with a Debian cluster config ("15"), or nothing.
pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }
pg_server_installed() {
  local v
  v=$(pg_version)
  [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && [ -d "/etc/postgresql/$v/main" ]
}
mariadb_server_installed() { [ -x /usr/sbin/mariadbd ]; }

mariadb_admin() { if have mariadb-admin; then mariadb-admin "$@"; else mysqladmin "$@"; fi; }
mariadb_sql() { if have mariadb; then mariadb "$@"; else mysql "$@"; fi; }

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
# ping succeeds as soon as the server answers, even if it then refuses the login.
mariadb_up() { mariadb_admin --protocol=TCP -h "$MY_HOST" -P "$MY_PORT" -u root --connect-timeout=2 ping >/dev/null 2>&1; }

psql_test() { psql -X -w -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"; }
mariadb_test() { mariadb_sql --protocol=TCP -h "$MY_HOST" -P "$MY_PORT" -u root "$@"; }

wait_until() { # description, check command...
  local what=$1 deadline=$((SECONDS + WAIT_S))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not answer within ${WAIT_S} s"
    sleep 0.25
  done
}

# Debian packages for whatever is missing. A server that answers on its port counts as present
# even when it is not installed here (e.g. another container provides it).
missing_packages() {
  { have psql && have pg_isready; } || echo postgresql-client
  have pgbench || echo postgresql-contrib
  { { have mariadb-admin || have mysqladmin; } && { have mariadb || have mysql; }; } || echo mariadb-client
  pg_server_installed || port_open "$PG_HOST" "$PG_PORT" || echo postgresql
  mariadb_server_installed || port_open "$MY_HOST" "$MY_PORT" || echo mariadb-server
  # Tools the end-to-end tests drive: sysbench (MySQL load) and headless Chromium (the dashboard).
  have sysbench || echo sysbench
  have curl || echo curl  # e2e/admin-api runs the documented curl commands
  [ -x /usr/bin/chromium ] || { echo chromium; echo fonts-liberation; }
  # Drivers the client-compatibility tests run (e2e/*-jdbc, e2e/pg-psycopg): Debian's jars in
  # /usr/share/java, a JDK to compile e2e/clients/*.java, psycopg for Debian's /usr/bin/python3.
  have javac || echo default-jdk-headless
  [ -f /usr/share/java/postgresql.jar ] || echo libpostgresql-jdbc-java
  [ -f /usr/share/java/mariadb-java-client.jar ] || echo libmariadb-java
  /usr/bin/python3 -c 'import psycopg2' 2>/dev/null || echo python3-psycopg2
  /usr/bin/python3 -c 'import psycopg' 2>/dev/null || echo python3-psycopg
}

install_packages() {
  have apt-get || die "missing $*; this script installs them only with apt-get (Debian/Ubuntu): install them by hand"
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$@"
}

# Fresh cluster only: listen on loopback, trust local connections (the tests use no password).
configure_fresh_pg() {
  local v conf
  v=$(pg_version)
  conf=/etc/postgresql/$v/main
  log "configuring PostgreSQL $v: 127.0.0.1:$PG_PORT, trust auth for local connections"
  # A drop-in (postgresql.conf ends with include_dir 'conf.d') rather than editing the main file.
  cat >"$conf/conf.d/sidecache.conf" <<EOF
# Written by sidecache's scripts/ensure-servers.sh.
listen_addresses = '$PG_HOST'
port = $PG_PORT
EOF
  cat >"$conf/pg_hba.conf" <<'EOF'
# Written by sidecache's scripts/ensure-servers.sh: tests connect over loopback without a password.
local all all trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128 trust
EOF
  chown postgres:postgres "$conf/conf.d/sidecache.conf" "$conf/pg_hba.conf"
  chmod 640 "$conf/conf.d/sidecache.conf" "$conf/pg_hba.conf"
  # The package may have started the cluster with its defaults already.
  if pg_ctlcluster "$v" main status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$v" main restart
  fi
}

start_pg() {
  local v cmd
  v=$(pg_version)
  cmd="pg_ctlcluster --skip-systemctl-redirect $v main start"
  is_root || die "PostgreSQL is installed but not answering on $PG_HOST:$PG_PORT; start it: sudo $cmd"
  log "starting PostgreSQL $v"
  if ! $cmd; then
    # An already running cluster (e.g. still recovering) makes start fail too; then just wait.
    pg_ctlcluster "$v" main status >/dev/null 2>&1 ||
      die "'$cmd' failed (see above and /var/log/postgresql/postgresql-$v-main.log)"
    log "PostgreSQL $v is running but not accepting connections yet; waiting"
  fi
}

start_mariadb() {
  # --pidfile: the tests' private mariadbd processes run the same executable; matched by --exec
  # alone, any of them counts as "already running" and the shared server is never started.
  local cmd="start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid --exec /usr/sbin/mariadbd -- --user=mysql"
  is_root || die "MariaDB is installed but not answering on $MY_HOST:$MY_PORT; start it: sudo $cmd"
  log "starting MariaDB"
  # /run is a tmpfs: after a reboot the socket directory is gone and mariadbd will not create it.
  install -d -o mysql -g mysql -m 755 /run/mysqld
  $cmd
}

# Fresh server only: root may log in over TCP with an empty password (as well as the unix socket).
configure_fresh_mariadb() {
  log "configuring MariaDB: root with an empty password over TCP"
  mariadb_sql -u root <<'EOF'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
EOF
}

# The role and database named after the OS user let `psql`/`pgbench` run without flags, as root.
create_pg_root_role() {
  psql_test -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'root'" | grep -q 1 ||
    psql_test -d postgres -c 'CREATE ROLE root SUPERUSER LOGIN'
  psql_test -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'root'" | grep -q 1 ||
    psql_test -d postgres -c 'CREATE DATABASE root OWNER root'
}

ensure_pg_test_database() {
  psql_test -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 ||
    die "PostgreSQL answers but user postgres cannot log in over TCP without a password; the tests need
  'host all all 127.0.0.1/32 trust' in pg_hba.conf (and a reload)"
  psql_test -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
    { log "creating PostgreSQL database test"; psql_test -d postgres -c 'CREATE DATABASE test'; }
}

ensure_mariadb_test_database() {
  mariadb_test -e 'SELECT 1' >/dev/null 2>&1 ||
    die "MariaDB answers but root cannot log in over TCP with an empty password; the tests need that, e.g.
  ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;"
  mariadb_test -e 'CREATE DATABASE IF NOT EXISTS test'
}

main() {
  local -a missing
  mapfile -t missing < <(missing_packages)
  local fresh_pg=no fresh_mariadb=no
  if [ ${#missing[@]} -gt 0 ]; then
    is_root || die "missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}"
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then fresh_pg=yes; fi
    if [[ " ${missing[*]} " == *" mariadb-server "* ]]; then fresh_mariadb=yes; fi
    install_packages "${missing[@]}"
  fi

  if [ "$fresh_pg" = yes ]; then configure_fresh_pg; fi
  if ! pg_up; then
    pg_server_installed || die "nothing answers on $PG_HOST:$PG_PORT and PostgreSQL is not installed here"
    start_pg
    wait_until "PostgreSQL on $PG_HOST:$PG_PORT" pg_up
  fi
  if ! mariadb_up; then
    mariadb_server_installed || die "nothing answers on $MY_HOST:$MY_PORT and MariaDB is not installed here"
    start_mariadb
    wait_until "MariaDB on $MY_HOST:$MY_PORT" mariadb_up
  fi

  if [ "$fresh_mariadb" = yes ]; then configure_fresh_mariadb; fi
  ensure_pg_test_database
  if [ "$fresh_pg" = yes ]; then create_pg_root_role; fi
  ensure_mariadb_test_database
  log "PostgreSQL on $PG_HOST:$PG_PORT and MariaDB on $MY_HOST:$MY_PORT are up"
}

main "$@"

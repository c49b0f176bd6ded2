#!/usr/bin/env bash
# Make sure RabbitMQ (with its management plugin, which the broker tests use) and PostgreSQL are up.
# Starts them when they are installed and stopped. When one is missing: as root on Debian (a fresh CI
# machine) it says what it is about to install, then installs it from Debian's packages; otherwise it
# prints the exact commands that get it (compose.yaml has both servers for those who use containers).
#   ensure-services.sh rabbitmq              only the broker (make run)
#   ensure-services.sh rabbitmq+postgresql   broker and PostgreSQL (make run REPLICAS=n)
#   ensure-services.sh postgresql            PostgreSQL only
#   ensure-services.sh all                   broker, PostgreSQL and SoftHSM2 (make test)
#   ensure-services.sh softhsm               SoftHSM2 only, with the development token under data/softhsm
#   ensure-services.sh pg-bindir             print where the newest PostgreSQL server's programs are
set -u
want=${1:-all}
AMQP_HOST=${AMQP_HOST:-127.0.0.1}
PG_HOST=${PG_HOST:-127.0.0.1}
TRUST_LINES='host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust'

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && exec 3>&- ; }

can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }

# The one place that finds PostgreSQL's server programs (initdb, pg_ctl): MOTCUA_PG_BIN when set, else
# the newest of Debian's /usr/lib/postgresql/<version>/bin, else pg_config --bindir, else initdb's folder.
# tests/support/private_postgres.py asks this too.
pg_bindir() {
  [ -n "${MOTCUA_PG_BIN:-}" ] && { echo "$MOTCUA_PG_BIN"; return 0; }
  local dir newest=""
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && newest="$newest$dir"$'\n'; done
  newest=$(printf '%s' "$newest" | sort -V | tail -1)
  [ -n "$newest" ] && { echo "$newest"; return 0; }
  dir=$(pg_config --bindir 2>/dev/null) && [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  dir=$(command -v initdb 2>/dev/null) && { dirname "$dir"; return 0; }
  return 1
}

wait_port() {  # host port seconds
  for _ in $(seq 1 "$3"); do port_open "$1" "$2" && return 0; sleep 1; done
  return 1
}

# What this run needs that is not installed: Debian package names, installed in one go after saying so.
missing_packages() {
  local wanted=() 
  case "$want" in rabbitmq|rabbitmq+postgresql|all) 
    port_open "$AMQP_HOST" 5672 || command -v rabbitmq-server >/dev/null 2>&1 || wanted+=(rabbitmq-server) ;; esac
  case "$want" in postgresql|rabbitmq+postgresql|all)
    port_open "$PG_HOST" 5432 || command -v pg_ctlcluster >/dev/null 2>&1 || wanted+=(postgresql) ;; esac
  case "$want" in softhsm|all) command -v softhsm2-util >/dev/null 2>&1 || wanted+=(softhsm2) ;; esac
  echo "${wanted[*]}"
}

install_as_root() {
  local packages; packages=$(missing_packages)
  [ -n "$packages" ] && can_apt || return 0
  echo "motcua: running as root, so installing from Debian's packages: $packages (apt-get install)"
  [[ " $packages " == *" postgresql "* ]] && echo "motcua: the new PostgreSQL cluster lets user postgres in without a password from 127.0.0.1 and ::1 (trust)"
  if [ -t 0 ]; then echo "motcua: Ctrl-C within 5 s to stop (compose.yaml runs both servers in containers instead)"; sleep 5; fi
  apt-get update -qq >/dev/null 2>&1 || true
  # shellcheck disable=SC2086 # one word per package
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1; then
    echo "motcua: apt-get install $packages failed" >&2
    return 0
  fi
  if [[ " $packages " == *" postgresql "* ]]; then
    # Only a cluster we have just installed is opened to trust on loopback, as the tests expect.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      [ -f "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba" || continue
      printf "$TRUST_LINES\n" | cat - "$hba" > "$hba.motcua" && mv "$hba.motcua" "$hba" && chown postgres:postgres "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload \
        >/dev/null 2>&1 || true
    done
  fi
}

ensure_rabbitmq() {
  if ! port_open "$AMQP_HOST" 5672; then
    if command -v rabbitmq-server >/dev/null 2>&1; then
      echo "motcua: starting RabbitMQ (rabbitmq-server -detached) ..."
      rabbitmq-server -detached >/dev/null 2>&1 || true
      wait_port "$AMQP_HOST" 5672 60 || { echo "motcua: RabbitMQ did not come up on $AMQP_HOST:5672 within 60 s" >&2; return 1; }
    else
      cat >&2 <<MSG
motcua: no RabbitMQ on $AMQP_HOST:5672, and none is installed here. Install it with its management API
(Debian's package starts the broker itself):
  sudo apt-get install rabbitmq-server && sudo rabbitmq-plugins enable rabbitmq_management
or run it in a container: docker compose up -d rabbitmq   (compose.yaml)
or point AMQP_URI at an existing broker.
MSG
      return 1
    fi
  fi
  port_open "$AMQP_HOST" 15672 && return 0
  if command -v rabbitmq-plugins >/dev/null 2>&1 && rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 \
    && wait_port "$AMQP_HOST" 15672 30; then
    return 0
  fi
  echo "motcua: the RabbitMQ management API ($AMQP_HOST:15672) is off, and the broker tests need it:" \
    "sudo rabbitmq-plugins enable rabbitmq_management" >&2
  return 0
}

# The password-less login the tests and make run use; without psql there is nothing to ask with.
pg_trusts() {
  command -v psql >/dev/null 2>&1 || return 0
  psql -h "$PG_HOST" -U postgres -w -Atqc 'select 1' postgres >/dev/null 2>&1
}

trust_hint() {
  local version=$1
  cat >&2 <<MSG
motcua: PostgreSQL on $PG_HOST:5432 asks user postgres for a password; the tests and make run connect
without one from this machine. Let it in from loopback only (lines read first win), then reload:
  sudo sed -i '1i $TRUST_LINES' /etc/postgresql/$version/main/pg_hba.conf
  sudo pg_ctlcluster $version main reload
MSG
}

ensure_postgres() {
  local bindir version
  bindir=$(pg_bindir) && version=$(basename "$(dirname "$bindir")")
  if port_open "$PG_HOST" 5432; then
    pg_trusts || { trust_hint "${version:-<version>}"; return 1; }
    return 0
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "${version:-}" ] && [ -d "/etc/postgresql/$version" ]; then
    echo "motcua: starting PostgreSQL $version ..."
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    wait_port "$PG_HOST" 5432 30 && { pg_trusts || { trust_hint "$version"; return 1; }; return 0; }
    echo "motcua: PostgreSQL $version did not come up on $PG_HOST:5432: sudo pg_ctlcluster $version main start" >&2
    return 1
  fi
  cat >&2 <<MSG
motcua: no PostgreSQL on $PG_HOST:5432. As root this script installs and opens it to loopback:
  sudo scripts/ensure-services.sh postgresql
or by hand: sudo apt-get install postgresql, then let user postgres in without a password from this machine:
  sudo sed -i '1i $TRUST_LINES' /etc/postgresql/*/main/pg_hba.conf && sudo systemctl reload postgresql
or run it in a container: docker compose up -d postgresql   (compose.yaml)
MSG
  return 1
}

# SoftHSM2: the PKCS#11 token the e-signature service's keys live in for tests (a real HSM or USB token
# differs only in its module path and PIN). Installed from Debian's packages when missing; the
# development token (label motcua-dev) is initialised once under data/softhsm.
ensure_softhsm() {
  command -v softhsm2-util >/dev/null 2>&1 || {
    echo "motcua: SoftHSM2 is missing (sudo apt-get install softhsm2); the PKCS#11 tests need it" >&2
    return 1
  }
  local dir; dir="$(cd "$(dirname "$0")/.." && pwd)/data/softhsm"
  mkdir -p "$dir/tokens"
  [ -f "$dir/softhsm2.conf" ] || printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$dir/tokens" > "$dir/softhsm2.conf"
  if ! SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --show-slots 2>/dev/null | grep -q "motcua-dev"; then
    SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free --label motcua-dev \
      --pin "${ESIGN_PKCS11_PIN:-1234}" --so-pin "${ESIGN_PKCS11_SO_PIN:-5678}" >/dev/null
  fi
  return 0
}

status=0
case "$want" in
  pg-bindir) pg_bindir || { echo "motcua: no PostgreSQL server programs (initdb) found; set MOTCUA_PG_BIN" >&2; exit 1; } ;;
  rabbitmq|rabbitmq+postgresql|postgresql|all|softhsm)
    install_as_root
    case "$want" in rabbitmq|rabbitmq+postgresql|all) ensure_rabbitmq || status=1 ;; esac
    case "$want" in postgresql|rabbitmq+postgresql|all) ensure_postgres || status=1 ;; esac
    case "$want" in softhsm|all) ensure_softhsm || status=1 ;; esac
    ;;
  *) echo "usage: $0 rabbitmq|rabbitmq+postgresql|postgresql|all|softhsm|pg-bindir" >&2; exit 2 ;;
esac
exit $status

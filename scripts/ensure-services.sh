#!/usr/bin/env bash
# Make sure RabbitMQ (with its management plugin, which the broker tests use) and PostgreSQL are up.
# Starts them when they are installed and stopped. When one is missing: installed from Debian's packages
# when run as root on Debian (a fresh CI machine), otherwise one line says how to get it.
#   ensure-services.sh rabbitmq        only the broker (make run)
#   ensure-services.sh rabbitmq+postgresql   broker and PostgreSQL (make run REPLICAS=n)
#   ensure-services.sh all             broker, PostgreSQL and SoftHSM2 (make test)
#   ensure-services.sh softhsm         SoftHSM2 only, with the development token under data/softhsm
set -u
want=${1:-all}
AMQP_HOST=${AMQP_HOST:-127.0.0.1}
PG_HOST=${PG_HOST:-127.0.0.1}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && exec 3>&- ; }

can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }

apt_install() {  # package...
  echo "motcua: installing $* from Debian's packages ..."
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

wait_port() {  # host port seconds
  for _ in $(seq 1 "$3"); do port_open "$1" "$2" && return 0; sleep 1; done
  return 1
}

ensure_rabbitmq() {
  if ! port_open "$AMQP_HOST" 5672; then
    command -v rabbitmq-server >/dev/null 2>&1 || ! can_apt || apt_install rabbitmq-server
    if command -v rabbitmq-server >/dev/null 2>&1; then
      echo "motcua: starting RabbitMQ (rabbitmq-server -detached) ..."
      rabbitmq-server -detached >/dev/null 2>&1 || true
      wait_port "$AMQP_HOST" 5672 60 || { echo "motcua: RabbitMQ did not come up on $AMQP_HOST:5672 within 60 s" >&2; return 1; }
    else
      cat >&2 <<'MSG'
motcua: no RabbitMQ on 127.0.0.1:5672, and none is installed here. Get one with either:
  sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
  docker run -d --name rabbitmq -p 5672:5672 -p 15672:15672 rabbitmq:3-management
or point AMQP_URI at an existing broker.
MSG
      return 1
    fi
  fi
  if ! port_open "$AMQP_HOST" 15672 && command -v rabbitmq-plugins >/dev/null 2>&1; then
    rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
    wait_port "$AMQP_HOST" 15672 30 || echo "motcua: RabbitMQ management API (15672) is not up; broker tests need it" >&2
  fi
  return 0
}

ensure_postgres() {
  port_open "$PG_HOST" 5432 && return 0
  if ! { command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; } && can_apt; then
    apt_install postgresql
    # Only a cluster we have just installed is opened to trust on loopback, as the tests expect.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      [ -f "$hba" ] || continue
      printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' | cat - "$hba" > "$hba.motcua" \
        && mv "$hba.motcua" "$hba" && chown postgres:postgres "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload \
        >/dev/null 2>&1 || true
    done
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -1)
    echo "motcua: starting PostgreSQL $version ..."
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    wait_port "$PG_HOST" 5432 30 && return 0
  fi
  echo "motcua: no PostgreSQL on $PG_HOST:5432 (install postgresql, trust auth for user postgres)" >&2
  return 1
}

# SoftHSM2: the PKCS#11 token the e-signature service's keys live in for tests (a real HSM or USB token
# differs only in its module path and PIN). Installed from Debian's packages when missing; the
# development token (label motcua-dev) is initialised once under data/softhsm.
ensure_softhsm() {
  if ! command -v softhsm2-util >/dev/null 2>&1; then
    can_apt && apt_install softhsm2
    command -v softhsm2-util >/dev/null 2>&1 || {
      echo "motcua: SoftHSM2 is missing (sudo apt-get install softhsm2); the PKCS#11 tests need it" >&2
      return 1
    }
  fi
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
  softhsm) ensure_softhsm || status=1 ;;
  *)
    ensure_rabbitmq || status=1
    if [ "$want" = all ]; then ensure_postgres || status=1; ensure_softhsm || status=1; fi
    if [ "$want" = rabbitmq+postgresql ]; then ensure_postgres || status=1; fi
    ;;
esac
exit $status

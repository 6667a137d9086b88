#!/usr/bin/env bash
# The local services chatsys runs on (MariaDB, Redis, RabbitMQ), as this kind of machine starts
# them.  One place for the commands: .ci/run uses `ensure`, the fault-injection tests use
# `stop` / `start` / `restart`.
#
#   scripts/services.sh ensure                      start whichever is down, wait until ready
#   scripts/services.sh start|stop|restart <name>   name: mariadb | redis | rabbitmq
#   scripts/services.sh status
set -euo pipefail

MYSQL_PING=(mysqladmin --protocol=tcp -h127.0.0.1 -uroot ping)

up() {
  case "$1" in
    mariadb) "${MYSQL_PING[@]}" >/dev/null 2>&1 ;;
    redis) redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 ;;
    rabbitmq) rabbitmq-diagnostics -q check_running >/dev/null 2>&1 ;;
    *) echo "unknown service: $1" >&2; exit 2 ;;
  esac
}

wait_up() {  # wait_up <name> <seconds>
  local deadline=$((SECONDS + $2))
  until up "$1"; do
    if ((SECONDS > deadline)); then
      echo "$1 did not come up within $2s" >&2
      return 1
    fi
    sleep 0.2
  done
}

start() {
  up "$1" && return 0
  case "$1" in
    mariadb)
      start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
      wait_up mariadb 60 ;;
    redis)
      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
      wait_up redis 30 ;;
    rabbitmq)
      if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        rabbitmqctl start_app >/dev/null  # the node runs but its app was stopped
      else
        rabbitmq-server -detached
      fi
      wait_up rabbitmq 120 ;;
  esac
}

stop() {
  case "$1" in
    mariadb)
      "${MYSQL_PING[@]}" >/dev/null 2>&1 || return 0
      mysqladmin --protocol=tcp -h127.0.0.1 -uroot shutdown
      local deadline=$((SECONDS + 60))
      while "${MYSQL_PING[@]}" >/dev/null 2>&1 || pgrep -x mariadbd >/dev/null; do
        ((SECONDS > deadline)) && { echo "mariadb did not stop" >&2; return 1; }
        sleep 0.2
      done ;;
    redis)
      redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true
      while up redis; do sleep 0.1; done ;;
    rabbitmq)
      rabbitmqctl stop_app >/dev/null ;;  # the broker stops serving; the node stays up
  esac
}

case "${1:-}" in
  ensure)
    for name in mariadb redis rabbitmq; do
      if ! up "$name"; then
        echo "$name is down: starting it"
        start "$name"
      fi
    done ;;
  start | stop) "$1" "$2" ;;
  restart) stop "$2"; start "$2" ;;
  status)
    for name in mariadb redis rabbitmq; do
      if up "$name"; then echo "$name: up"; else echo "$name: down"; fi
    done ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac

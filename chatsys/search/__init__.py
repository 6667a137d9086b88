"""The search service: backend chosen by ``search.backend``, reached as ``request.search``."""

import logging

from chatsys.search.interfaces import SearchUnavailable

log = logging.getLogger(__name__)


def includeme(config) -> None:
    settings = config.get_settings()
    if settings["search.backend"] == "elasticsearch":
        from chatsys.search.elasticsearch import ElasticsearchSearch

        search = ElasticsearchSearch.from_settings(settings)
        try:
            search.ensure_index()  # created at start if missing; the workers do the same
        except SearchUnavailable as exc:
            log.warning("search index not ensured at start: %s", exc)
        config.add_request_method(lambda request: search, "search", reify=True)
    else:
        from chatsys.search.database import DatabaseSearch

        # Per request: it queries through the request's session.
        config.add_request_method(lambda request: DatabaseSearch(request.dbsession), "search", reify=True)

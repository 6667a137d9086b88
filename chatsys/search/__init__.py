"""The search service: backend chosen by ``search.backend`` and looked up per request."""

import logging

from chatsys.search.interfaces import ISearch, SearchUnavailable

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
        config.register_service(search, ISearch)
    else:
        from chatsys.search.database import DatabaseSearch

        config.register_service_factory(lambda context, request: DatabaseSearch(request.dbsession), ISearch)

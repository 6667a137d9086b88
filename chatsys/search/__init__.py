"""The search service: backend chosen by ``search.backend`` and looked up per request."""

from chatsys.search.interfaces import ISearch


def includeme(config) -> None:
    settings = config.get_settings()
    if settings["search.backend"] == "elasticsearch":
        from chatsys.search.elasticsearch import ElasticsearchSearch

        config.register_service(ElasticsearchSearch.from_settings(settings), ISearch)
    else:
        from chatsys.search.database import DatabaseSearch

        config.register_service_factory(
            lambda context, request: DatabaseSearch(request.dbsession), ISearch
        )

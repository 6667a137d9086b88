"""Search: one interface (:mod:`chatsys.search.interfaces`), an Elasticsearch backend and a
database one; the web reaches the configured backend as ``request.search`` (chatsys.web.search)."""

"""Consumers of the domain events: ``counters`` (chats_count / messages_count) and ``indexer``
(the search index), run by ``chatsys.consumers.runner``."""

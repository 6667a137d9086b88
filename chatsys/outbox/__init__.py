"""The transactional outbox: events written by views (``writer``), published by the relay (``relay``)."""

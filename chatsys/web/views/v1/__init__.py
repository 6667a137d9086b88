"""chatsys's own API, under /v1: strict validation against the OpenAPI document, envelopes with
cursor pagination, ``Idempotency-Key`` on creates, 200 with the resource on PATCH."""

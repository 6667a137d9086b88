"""Test tools: the OpenAPI-validating test app, database helpers, the Elasticsearch double."""

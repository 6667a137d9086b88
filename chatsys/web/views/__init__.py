"""HTTP views: ``v1/`` (chatsys's own API), ``original/`` (the original Rails API), errors and
health.  Views parse, call the domain layer and shape its answer; they hold no SQL and never
commit (pyramid_tm does)."""

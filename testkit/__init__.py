"""Tools the test suite and the benchmark share: the real chatsys processes as children
(:mod:`testkit.processes`) and the in-process Elasticsearch double (:mod:`testkit.es_double`).

They are development tools, never part of the service: the wheel leaves this package out, and
nothing under ``chatsys/`` imports it.  They live here rather than in ``tests/`` so that the
benchmark (``bench/``) does not depend on the test suite.
"""

"""Benchmarks comparing skqueue with a real Celery worker (see ``benchmarks/README.md``)."""

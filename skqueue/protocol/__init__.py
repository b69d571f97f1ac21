"""Celery's wire formats (messages, results, states). Pure: no I/O, no Redis, no asyncio."""

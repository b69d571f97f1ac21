"""The SenangKira dashboard: its seven Celery tasks and their data store.

``skqueue worker`` runs :data:`app` when no ``-A`` is given. The tasks read the SenangKira tables
(:mod:`.schema`) through SQLAlchemy (SQLite by default, PostgreSQL via ``SKQUEUE_DATABASE_URL``), keep
computed dashboards in Redis (:mod:`skqueue.broker.cache`), and write exports to ``SKQUEUE_EXPORT_DIR``.
"""

from skqueue.dashboard.tasks import app

__all__ = ["app"]

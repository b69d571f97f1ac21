"""``skqueue demo``: the embedded broker, an skqueue worker and the real Celery client, end to end."""

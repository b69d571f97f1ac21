"""The scheduler: Celery-beat-compatible periodic tasks, exactly once per firing with any number of
scheduler processes (``skqueue scheduler``). Imports broker, protocol, config and app; never worker or api.

* :mod:`~skqueue.scheduler.cron`: when schedules fire (the only croniter user; the DST rule).
* :mod:`~skqueue.scheduler.entries`: ``beat_schedule`` parsed into :class:`~skqueue.scheduler.entries.Entry`.
* :mod:`~skqueue.scheduler.plan`: which firings are due now, after catch-up (pure).
* :mod:`~skqueue.scheduler.publish`: the Celery message of a firing.
* :mod:`~skqueue.scheduler.beat`: the scheduler loop (lease, tick, publish).
* :mod:`~skqueue.scheduler.service`: list, pause, resume, trigger.
"""

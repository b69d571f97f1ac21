"""Everything that talks to Redis: queues, reservation, acks, results and the embedded server."""

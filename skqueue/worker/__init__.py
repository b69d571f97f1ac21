"""Consume, execute, settle: the skqueue worker."""

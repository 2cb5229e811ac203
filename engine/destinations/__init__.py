"""Destinations: webhooks that hear segment changes and alerts from the outbox."""

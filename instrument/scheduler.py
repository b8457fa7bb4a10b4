"""Scheduled scans: a persistent queue run in time windows (APScheduler with an SQLite job store)."""

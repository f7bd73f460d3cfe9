"""Conversations and settings in SQLite under the platformdirs data directory. No textual."""

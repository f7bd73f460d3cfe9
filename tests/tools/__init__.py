"""Test tools that are not tests themselves."""

"""The end-to-end scenarios, by topic; their fixtures are in e2e/conftest.py."""

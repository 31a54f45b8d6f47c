"""Tests of the mail integrations."""

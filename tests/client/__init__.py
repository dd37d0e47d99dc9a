"""Tests of the Capstan client library (`capstan.client`)."""

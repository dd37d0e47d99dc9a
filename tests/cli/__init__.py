"""Tests of the `capstan` command line (`capstan.cli`)."""

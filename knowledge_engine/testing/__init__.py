"""Test helpers shipped with the package so that tests and benchmarks share them."""

"""Helpers that test modules in several folders import (not fixtures: those live in conftest).

pytest's default import mode puts `tests/` on `sys.path` for `tests/conftest.py`, so every
test module can `from support.<module> import ...`.
"""

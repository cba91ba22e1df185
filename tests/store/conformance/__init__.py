"""The store conformance suite: every protocol operation and its semantics, on both stores.

Each test runs once on SQLite and once on PostgreSQL (which skips without
``FW_TEST_DATABASE_URL``): the ``store`` and ``other_store`` fixtures come from
``tests/store/conftest.py``. Times are explicit: the store never reads a clock. One module per
section of the protocol; the shared row builders and readers are in ``helpers.py``.
"""

"""An RQ application on a `dramatiq_sentinel.Failover` client (tests/test_rq.py)."""

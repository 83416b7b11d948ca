"""The dramatiq middleware (`dramatiq_sentinel.middleware.sentinel.Sentinel`)."""

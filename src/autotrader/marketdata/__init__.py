"""Market data: the store port, file import, verification and resampling (pure logic)."""

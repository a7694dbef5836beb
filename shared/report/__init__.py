"""Self-contained HTML report pages and the figures that go on them."""

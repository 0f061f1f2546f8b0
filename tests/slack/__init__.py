"""The Slack door: its pure views and blocks, and wire tests against the fake Slack (HTTP and Socket Mode)."""

"""The GitHub door: its pure grammar, triage and views, and wire tests against the fake GitHub."""

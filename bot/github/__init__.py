"""The GitHub door: verified webhooks in, RunRequests out; reporting back through the outbox
(`reporter`, `replies`). Which handlers answer which events is `handlers`; the door plugs into the
core as `plugin.PLUGIN`. Importing the package loads nothing (the CLI wires the door without PyGithub).
"""

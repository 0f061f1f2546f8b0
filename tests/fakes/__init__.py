"""Fake GitHub, Slack and Socket Mode servers on loopback: real HTTP and WebSocket servers that the real
clients (PyGithub, slack_sdk, slack-bolt) talk to, recording what they receive (see each module)."""

"""Fake GitHub, Slack and Socket Mode servers on loopback: real HTTP and WebSocket servers that the real
clients (PyGithub, slack_sdk, slack-bolt) talk to, recording what they receive (see each module).

Beside them, each door's harness, a pytest plugin that tests/conftest.py loads (`pytest_plugins`), so
that its fixtures reach every test without an import: `github_bot.py` (the running bot, GitHub's
payloads, the fake GitHub and the bot that reports to it), `slack_bot.py` (the fake Slack, its bot,
signed commands and clicks), `cli.py` (real `tierbot` processes, the pre-push hook, `tierbot serve`) and
`local_backend.py` (the local backend, its jobs and a recording watcher).
"""

"""The terminal door, and where the processes start: `tierbot run|compare|diff|runs|show|cancel|tiers|
schema|demo|hooks` for people at a terminal and in git hooks, and `serve|worker|replay` for operators,
which wire the doors to the core (`bot.wiring`). Entry point: `bot.cli.main:main`."""

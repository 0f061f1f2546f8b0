"""Across the doors: what hostile input and outputs, leaked secrets, untrusted code and the APIs' rate
limits cannot do to the bot, on the wire through GitHub, Slack and the terminal at once."""

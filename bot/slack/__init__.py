"""The Slack door: `/run …` slash commands and buttons in, one live message per run out.

`bolt` answers Slack within its 3 seconds (parsing and recording only); `handlers` do the work in a
worker; `views` and `reporter` keep each run's message up to date through the report outbox.
"""

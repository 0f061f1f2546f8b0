"""What people read about a comparison: GitHub Markdown, Slack Block Kit, an HTML page, the terminal.

All four come from the same `Comparison` through Jinja2 templates in `templates/`. This package only
prepares plain data for them (`view`), escapes user data per format (`templates`), and decides what fits
where a format has limits: GitHub's comment and check-summary sizes (`markdown`), Slack's blocks and text
lengths (`slack`).
"""

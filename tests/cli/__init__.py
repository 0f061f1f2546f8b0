"""The terminal door: real `tierbot` processes (commands, `diff`, `demo`, the pre-push hook, `serve`)."""

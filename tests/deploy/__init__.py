"""Merge to deploy: the model server and the proxy as processes, the local target's blue/green swaps,
the deployments' queue and state machine on real repositories and databases, and the GitHub door's
merged pull requests and pushes against the fake GitHub's Deployments API."""

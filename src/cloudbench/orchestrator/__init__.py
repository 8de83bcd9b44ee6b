"""The orchestrator: runs, tasks, claims, heartbeats, results."""

"""Replicas sharing state on Redis: leases on task sets, fenced saves, a shared rate budget."""

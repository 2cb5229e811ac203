"""The web console under /console/: server-rendered pages of what the engine knows and does."""

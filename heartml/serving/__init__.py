"""Online scoring: the served alias behind FastAPI, followed without restarts, with a request log."""

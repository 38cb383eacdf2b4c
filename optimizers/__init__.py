"""Pure-PyTorch model optimizations for Slimforge (no Django, Celery or web code)."""

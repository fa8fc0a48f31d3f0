"""The gesalps example API (served by gunicorn with uvicorn workers)."""

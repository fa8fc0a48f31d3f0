"""Compose healthcheck: healthy while the heartbeat file is younger than 10 s."""

import os
import sys
import time

PATH = os.environ.get("HEARTBEAT_FILE", "/tmp/heartbeat")
MAX_AGE = float(os.environ.get("HEARTBEAT_MAX_AGE", "10"))

try:
    age = time.time() - os.path.getmtime(PATH)
except OSError:
    sys.exit(1)
sys.exit(0 if age < MAX_AGE else 1)

"""The test suite's settings: the portal's, with DEBUG on (it defaults off) unless the environment
says otherwise. Set in the environment, so the processes the tests start (a Celery worker,
manage.py) run as the suite does."""

import os

os.environ.setdefault("DEBUG", "True")

from portal.settings import *  # noqa: E402, F403

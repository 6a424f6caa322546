"""gunicorn entry point: `gunicorn --chdir functions/monitor main:app`."""

from handler import MonitorSettings, handle
from troupe.function import create_app

app = create_app(handle, settings_class=MonitorSettings)

"""The monitor function as a WSGI app: `gunicorn --chdir functions/monitor main:app`."""

from handler import CONSUMES, MonitorSettings, handle
from troupe.function import create_app

app = create_app(handle, consumes=CONSUMES, settings_class=MonitorSettings)

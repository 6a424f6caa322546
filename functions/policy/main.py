"""gunicorn entry point: `gunicorn --chdir functions/policy main:app`."""

from handler import PolicySettings, handle
from troupe.function import create_app

app = create_app(handle, settings_class=PolicySettings)

"""The policy function as a WSGI app: `gunicorn --chdir functions/policy main:app`."""

from handler import CONSUMES, PolicySettings, handle
from troupe.function import create_app

app = create_app(handle, consumes=CONSUMES, settings_class=PolicySettings)

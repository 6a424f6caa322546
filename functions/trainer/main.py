"""The trainer function as a WSGI app: `gunicorn --chdir functions/trainer main:app`."""

from handler import CONSUMES, TrainerSettings, handle
from troupe.function import create_app

app = create_app(handle, consumes=CONSUMES, settings_class=TrainerSettings)

"""The ingest function as a WSGI app: `gunicorn --chdir functions/ingest main:app`."""

from handler import CONSUMES, IngestSettings, handle
from troupe.function import create_app

app = create_app(handle, consumes=CONSUMES, settings_class=IngestSettings)

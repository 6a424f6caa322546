"""The ingest function as a WSGI app: `gunicorn --chdir functions/ingest main:app`."""

from handler import IngestSettings, handle
from troupe.function import create_app

app = create_app(handle, settings_class=IngestSettings)

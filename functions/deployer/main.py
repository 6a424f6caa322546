"""The deployer function as a WSGI app: `gunicorn --chdir functions/deployer main:app`."""

from handler import CONSUMES, DeployerSettings, handle
from troupe.function import create_app

app = create_app(handle, consumes=CONSUMES, settings_class=DeployerSettings)

from handler import DeployerSettings, handle
from troupe.function import create_app

app = create_app(handle, settings_class=DeployerSettings)

from handler import handle
from troupe.function import Settings, create_app

# Dead letters may be of any type, ours or a subscriber's, so foreign types are accepted.
app = create_app(handle, settings_class=Settings, accept_unknown_types=True)

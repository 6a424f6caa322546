"""`troupe demo`: the whole lifecycle closing its loop on one machine."""

"""`troupe demo`: the whole lifecycle closing its loop on one machine."""

# Scenarios a live demo can play (troupe.ml.scenarios has them all); `recurring` needs a
# second retrain to mean anything, which the demo does not wait for.
LIVE_SCENARIOS = ("none", "abrupt", "moderate", "gradual", "covariate")

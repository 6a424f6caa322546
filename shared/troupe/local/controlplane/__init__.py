"""The control plane: what `kubectl` and the `kubernetes` client talk to.

`apiserver` serves the Kubernetes REST API over `objects`, the object store, which
`saved_objects` keeps on disk across restarts. `resources` names the kinds and checks
their fields; `manifests` reads the project's YAML and `apply` applies it the way
`kubectl apply` does; `patch` and `tables` are the API's patch formats and printer
columns.
"""

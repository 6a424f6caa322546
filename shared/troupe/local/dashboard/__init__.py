"""The dashboard `troupe up` serves on loopback, and the OTLP receiver beside it.

`access` decides who may come in (the API's token, the Host, CSRF); `server` is the HTTP
server and `http` its request and answer types; `collector` takes the functions' spans
over OTLP/HTTP into the runtime's span store.
"""

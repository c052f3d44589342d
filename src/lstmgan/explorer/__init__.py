"""`lstmgan explore`: a local web page over both parts (the optional `[explorer]` extra).

catalog.py  the models the page works on (no web framework: the tests call it directly)
app.py      the Starlette app: the page and its JSON / PNG endpoints
server.py   binding (127.0.0.1 by default), uvicorn, Ctrl-C
static/     the page itself: plain HTML, CSS and JS, nothing fetched from elsewhere
"""

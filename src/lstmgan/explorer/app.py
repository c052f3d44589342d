"""The explorer's web app: one page (static/), and a small JSON and PNG API over a `Catalog`.

GET  /api/models                          the generators and palindrome models, with their metrics
GET  /api/grid.png?generator&seed[&digit][&cluster][&scale][&download]    a 5 x 5 grid
GET  /api/between.png?generator&seed&a&b&t[&mode][&digit][&cluster]     one image from cell a to cell b
GET  /api/palindrome/fresh?model&length[&seed]                           a fresh palindrome
POST /api/palindrome/predict   {"model", "sequence"}                     the prediction, class probabilities
POST /api/palindrome/inspect   {"model", "sequence"[, "seed"]}           the memory picture (PNG) and its numbers

A user's mistake is a 400 with {"error": one line}; the server keeps serving.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import UsageError
from ..plots import image_grid
from ..recurrent.inspection import draw
from .catalog import GRID_COLUMNS, GRID_SIZE, MAX_SEED, Catalog, integer

STATIC = Path(__file__).parent / "static"
MAX_SCALE = 8
PYPLOT = threading.Lock()
# the page is ours alone: no script, style, font or image from anywhere but this server
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                               "connect-src 'self' data: blob:",
                    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def png(picture, filename: str | None = None) -> Response:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False, compress_level=1)
    headers = {"Cache-Control": "no-store", **SECURITY_HEADERS}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(buffer.getvalue(), media_type="image/png", headers=headers)


def memory_picture(model, digits, seed: int) -> dict:
    """`palindrome inspect` for a typed sequence: its numbers, and its figure as base64 PNG."""
    result = model.inspect(digits, seed)
    buffer = io.BytesIO()
    with PYPLOT:    # pyplot is not thread-safe
        draw(result, buffer)
    return {**result, "png": base64.b64encode(buffer.getvalue()).decode()}


def optional(query, name: str, high: int) -> int | None:
    value = query.get(name, "")
    return None if value in ("", "none") else integer(value, name, 0, high)


def create_app(catalog: Catalog) -> Starlette:
    def models(request: Request):
        return JSONResponse({"generators": [g.info() for g in catalog.generators.values()],
                             "palindromes": [p.info() for p in catalog.palindromes.values()]})

    def grid(request: Request):
        q = request.query_params
        G = catalog.generator(q.get("generator"))
        seed = integer(q.get("seed", 0), "seed", 0, MAX_SEED)
        images = G.grid(seed, optional(q, "digit", 99), optional(q, "cluster", 9999))
        scale = integer(q.get("scale", 1), "scale", 1, MAX_SCALE)
        download = q.get("download") == "1" and f"grid-seed{seed}.png"
        return png(image_grid(images, GRID_COLUMNS, scale=scale), download or None)

    def between(request: Request):
        q = request.query_params
        G = catalog.generator(q.get("generator"))
        cells = GRID_SIZE - 1
        try:
            t = float(q.get("t", 0))
        except ValueError:
            raise UsageError(f"t must be a number in 0..1 (got {q.get('t')!r})") from None
        image = G.between(integer(q.get("seed", 0), "seed", 0, MAX_SEED), integer(q.get("a", 0), "a", 0, cells),
                          integer(q.get("b", cells), "b", 0, cells), t, q.get("mode", "lerp"),
                          optional(q, "digit", 99), optional(q, "cluster", 9999))
        scale = integer(q.get("scale", 4), "scale", 1, MAX_SCALE)
        return png(image_grid(image[None], 1, pad=0, scale=scale))

    def fresh(request: Request):
        q = request.query_params
        model = catalog.palindrome(q.get("model"))
        length = integer(q.get("length", model.config.input_length), "length", 1, model.max_length)
        digits = model.fresh(length, integer(q.get("seed", 0), "seed", 0, MAX_SEED))
        return JSONResponse({"sequence": "".join(map(str, digits[:-1])), "answer": digits[-1]})

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            raise UsageError("the request body must be JSON") from None
        if not isinstance(data, dict):
            raise UsageError("the request body must be a JSON object")
        return data

    async def predict(request: Request):
        data = await body(request)
        model = catalog.palindrome(data.get("model"))
        return JSONResponse(model.predict(model.parse(data.get("sequence", ""))))

    async def inspect(request: Request):
        data = await body(request)
        model = catalog.palindrome(data.get("model"))
        digits = model.parse(data.get("sequence", ""))
        seed = integer(data.get("seed", 0), "seed", 0, MAX_SEED)
        return JSONResponse(await run_in_threadpool(memory_picture, model, digits, seed))

    def index(request: Request):
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def usage_error(request: Request, error: UsageError):
        return JSONResponse({"error": " ".join(str(error).split())}, status_code=400)

    routes = [Route("/", index), Route("/api/models", models), Route("/api/grid.png", grid),
              Route("/api/between.png", between), Route("/api/palindrome/fresh", fresh),
              Route("/api/palindrome/predict", predict, methods=["POST"]),
              Route("/api/palindrome/inspect", inspect, methods=["POST"]),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    return Starlette(routes=routes, exception_handlers={UsageError: usage_error})

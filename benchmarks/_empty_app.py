"""The ceiling of bench_server.py: a FastAPI route that does nothing, served like retrievo's (uvicorn)."""

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()


@app.post("/v1/collections/{name}/search")
async def search(name: str) -> Response:
    return Response(b"{}", media_type="application/json")

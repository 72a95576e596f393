"""Schemathesis against the server's own OpenAPI spec (bounded): no request may cause a 5xx.

Runs the schemathesis CLI (examples, coverage, fuzzing and stateful phases) against a real server on
loopback, authenticated so the write routes are exercised too, on a collection that holds documents.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from retrievo.server.process import ServerProcess


def test_schemathesis_finds_no_server_error(tmp_path, scifact_small):
    with ServerProcess(tmp_path / "data", api_key="k", args=["--commit-interval", "0.2"], log=tmp_path / "server.log") as srv:
        h = srv.headers
        assert httpx.post(srv.url + "/v1/collections", json={"name": "sci", "dense": False}, headers=h).status_code == 201
        docs = [{**d, "metadata": {"year": 2000 + i % 20, "tag": f"t{i % 3}"}} for i, d in enumerate(scifact_small[:50])]
        assert httpx.post(srv.url + "/v1/collections/sci/documents", json=docs, headers=h).status_code == 202
        httpx.post(srv.url + "/v1/collections/sci/commit", headers=h, timeout=60)
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
               "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", srv.url + "/openapi.json",
             "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "7",
             "--header", "Authorization: Bearer k", "--no-color"],
            env=env, capture_output=True, text=True, timeout=600,
        )
        out = proc.stdout + proc.stderr
        print(out[-1500:])
        assert proc.returncode == 0, out[-4000:]
        assert "20 selected" in out and " passed" in out, out[-2000:]  # every operation: PATCH, snapshots, facets, quarantine
        assert httpx.get(srv.url + "/v1/health").status_code == 200

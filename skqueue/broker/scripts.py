"""The Lua scripts in ``scripts/``: loaded lazily from the package, called by SHA with a reload on NOSCRIPT."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


@cache
def source(name: str) -> str:
    return resources.files("skqueue.broker").joinpath("scripts", f"{name}.lua").read_text("utf-8")


@cache
def sha(name: str) -> str:
    return hashlib.sha1(source(name).encode("utf-8")).hexdigest()


async def call(client: Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """Run script ``name``; a server that forgot it (restart, SCRIPT FLUSH) gets it loaded again."""
    try:
        return await client.evalsha(sha(name), len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(source(name))
        return await client.evalsha(sha(name), len(keys), *keys, *args)

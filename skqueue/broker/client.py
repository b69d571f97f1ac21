"""Redis clients built from broker/backend URLs."""

from __future__ import annotations

from urllib.parse import urlparse

from redis.asyncio import Redis

from skqueue.errors import ConfigError

SCHEMES = ("redis", "rediss", "unix")


def check_url(url: str) -> str:
    scheme = urlparse(url).scheme
    if scheme not in SCHEMES:
        raise ConfigError(f"unsupported broker URL {url!r}: use redis://, rediss:// or unix://")
    return url


def db_of(url: str) -> int:
    """The database number of a Redis URL (path ``/N`` or ``?db=N``), 0 by default."""
    parsed = urlparse(url)
    path = parsed.path.strip("/")
    if parsed.scheme != "unix" and path.isdigit():
        return int(path)
    for part in parsed.query.split("&"):
        name, _, value = part.partition("=")
        if name == "db" and value.isdigit():
            return int(value)
    return 0


def connect(url: str, *, name: str = "skqueue", max_connections: int | None = None) -> Redis:
    """A ``redis.asyncio`` client for ``url`` (hiredis is used automatically when installed)."""
    return Redis.from_url(
        check_url(url),
        client_name=name,
        max_connections=max_connections,
        health_check_interval=30,
        socket_keepalive=True,
    )


async def aclose(obj: object) -> None:
    """Close a client or pub/sub object on both redis-py 4.x (``close``) and 5+ (``aclose``)."""
    closer = getattr(obj, "aclose", None) or getattr(obj, "close", None)
    if closer is not None:
        await closer()

"""The `turingpi` driver: a Turing Pi 2's node slots, through its BMC's HTTP API.

Per the BMC API documentation (docs.turingpi.com, "BMC API"):
`GET /api/bmc?opt=set&type=power&node1=1` powers slot 1 on (`=0` off) and
`GET /api/bmc?opt=get&type=power` answers `{"response":[{"result":[{"node1":1,...}]}]}`.
Firmware 2.x asks for credentials: `user` and the password in secrets_dir/power/SECRET,
sent as HTTP Basic authentication. HTTPS certificates are verified (the system's CAs).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from piherd.power.base import Driver, DriverContext, PowerError, PowerState
from piherd.power.settings import Target

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class BmcRequest:
    """One API call: its URL and headers (the Authorization header holds the password)."""

    url: str
    headers: dict[str, str]

    def __repr__(self) -> str:  # never show the credentials
        return f"BmcRequest({self.url!r})"


def api_request(target: Target, ctx: DriverContext | None, **query: str) -> BmcRequest:
    """The request of `/api/bmc?QUERY` at the node's BMC (credentials when configured)."""
    c = target.controller
    scheme = "https" if c.https else "http"
    port = f":{c.port}" if c.port else ""
    url = f"{scheme}://{target.host}{port}/api/bmc?{urllib.parse.urlencode(query)}"
    headers = {"Accept": "application/json"}
    if c.user and c.secret and ctx is not None:
        password = ctx.secret_words(c.secret)[0]
        token = base64.b64encode(f"{c.user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return BmcRequest(url, headers)


def power_request(target: Target, ctx: DriverContext | None, on: bool) -> BmcRequest:
    """`opt=set&type=power&nodeN=1|0` for the node's slot."""
    return api_request(
        target, ctx, opt="set", type="power", **{f"node{target.index}": "1" if on else "0"}
    )


def parse_power(body: Any, index: int) -> PowerState:
    """The slot's state in the BMC's answer to `opt=get&type=power`."""
    key = f"node{index}"
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if key in item:
                return "on" if str(item[key]) in ("1", "true", "True") else "off"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return "unknown"


def _fetch(request: BmcRequest, timeout: float) -> Any:
    # The URL is built by api_request: http or https only.
    http = urllib.request.Request(request.url, headers=request.headers, method="GET")  # noqa: S310
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(http, timeout=timeout, context=context) as answer:  # noqa: S310 (http/https only)
            data = answer.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        raise PowerError(
            f"BMC {urllib.parse.urlsplit(request.url).netloc}: HTTP {exc.code}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PowerError(f"BMC {urllib.parse.urlsplit(request.url).netloc}: {reason}") from None
    try:
        return json.loads(data or b"null")
    except ValueError:
        return None


class TuringPiDriver(Driver):
    """Power a Turing Pi 2 slot on or off."""

    name = "turingpi"

    async def _call(self, request: BmcRequest, ctx: DriverContext) -> Any:
        async with asyncio.timeout(ctx.timeout + 1):
            return await asyncio.to_thread(_fetch, request, ctx.timeout)

    async def on(self, target: Target, ctx: DriverContext) -> None:
        await self._call(power_request(target, ctx, True), ctx)

    async def off(self, target: Target, ctx: DriverContext) -> None:
        await self._call(power_request(target, ctx, False), ctx)

    async def status(self, target: Target, ctx: DriverContext) -> PowerState:
        body = await self._call(api_request(target, ctx, opt="get", type="power"), ctx)
        return parse_power(body, target.index)

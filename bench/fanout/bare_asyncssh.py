"""The in-process SSH floor: bare asyncssh fan-out. Args: CONFIG KNOWN_HOSTS KEY N CMD HOST..."""

import asyncio
import sys

import asyncssh


async def one(host: str, gate: asyncio.Semaphore, args: list[str]) -> str:
    config, known_hosts, key, _fanout, command = args[:5]
    async with gate:
        try:
            async with asyncssh.connect(
                host, config=[config], known_hosts=known_hosts, client_keys=[key]
            ) as conn:
                result = await conn.run(command)
                return f"{host}: {result.exit_status} {str(result.stdout).strip()}"
        except (OSError, asyncssh.Error) as exc:
            return f"{host}: error {exc}"


async def main(args: list[str]) -> None:
    gate = asyncio.Semaphore(int(args[3]))
    for line in await asyncio.gather(*(one(h, gate, args) for h in args[5:])):
        print(line)


asyncio.run(main(sys.argv[1:]))

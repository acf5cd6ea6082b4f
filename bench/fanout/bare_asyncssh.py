"""The in-process SSH floor: bare asyncssh fan-out. Args: USER KNOWN_HOSTS KEY N CMD ADDRESS...

What a 25-line script would do: no ssh_config, the user, key and known_hosts given
explicitly, one connection per address, at most N at a time.
"""

import asyncio
import sys

import asyncssh


async def one(host: str, gate: asyncio.Semaphore, args: list[str]) -> str:
    user, known_hosts, key, _fanout, command = args[:5]
    async with gate:
        try:
            async with asyncssh.connect(
                host, username=user, known_hosts=known_hosts, client_keys=[key], config=[]
            ) as conn:
                result = await conn.run(command)
                return f"{host}: {result.exit_status} {str(result.stdout).strip()}"
        except (OSError, asyncssh.Error) as exc:
            return f"{host}: error {exc}"


async def main(args: list[str]) -> None:
    gate = asyncio.Semaphore(int(args[3]))
    lines = await asyncio.gather(*(one(h, gate, args) for h in args[5:]))
    print("\n".join(lines))
    if any(": error " in line for line in lines):
        sys.exit(1)


asyncio.run(main(sys.argv[1:]))

"""The worker as a standard LiveKit agent worker (`AgentServer`).

The main process asks Home Assistant for the entry's LiveKit server and agent name, then
registers with LiveKit under that name (explicit dispatch: Home Assistant's card tokens
and its join-room action ask LiveKit for the agent). LiveKit hands each room to one of the
registered workers, and each job runs in its own process from LiveKit's pool, with its
own link to Home Assistant. Run the same command on more machines to share the rooms:
LiveKit's dispatch balances them by load; Shackleton adds no balancing of its own. A job
ends when its person leaves, so the agent leaves too and the room's next visitor gets a
new dispatch.
"""

from __future__ import annotations

import asyncio
from functools import partial
import logging
from typing import Any

from livekit.agents import AgentServer, JobContext, JobProcess

from .engine import vad_options
from .ha_link import FatalLinkError, HomeAway, HomeLink
from .settings import TurnTaking
from .worker import VoiceWorker, WorkerConfig

_LOGGER = logging.getLogger(__name__)


def _prewarm(proc: JobProcess) -> None:
    """Load silero once per pooled process, before any job needs it."""
    from livekit.plugins import silero

    proc.userdata["vad"] = silero.VAD.load(**vad_options(TurnTaking()))


async def _job(ctx: JobContext) -> None:
    """Serve one room: link to Home Assistant, build the engine, talk to the first person."""
    config = WorkerConfig.load(None)
    room = ctx.room.name
    worker = VoiceWorker(
        WorkerConfig(
            ha_url=config.ha_url,
            token=config.token,
            entry_id=config.entry_id,
            name=f"{config.name}/{room}",
        ),
        vad=ctx.proc.userdata.get("vad"),
    )
    ctx.add_shutdown_callback(worker.aclose)
    _LOGGER.info("Serving room %s (job %s)", room, ctx.job.id)
    await worker.async_start(30)
    await ctx.connect()
    participant = await ctx.wait_for_participant()
    session = await worker.async_serve(
        room, rtc_room=ctx.room, participant_identity=participant.identity
    )
    await session.closed.wait()
    # The person left and the session closed with them. A job outlives its entrypoint
    # until it is shut down: it would keep the room marked served in Home Assistant
    # (which then asks for no dispatch when someone comes back) and hold a slot here.
    ctx.shutdown("the session ended")


def _room_load(server: AgentServer, max_rooms: int) -> float:
    """Return the share of this worker's rooms in use (1.0: full)."""
    return len(server.active_jobs) / max_rooms


def run_livekit(
    config: WorkerConfig,
    health_port: int,
    *,
    idle_processes: int | None = None,
    max_rooms: int = 0,
) -> int:
    """Register with LiveKit and serve dispatched rooms until stopped.

    `idle_processes` job processes wait warm (LiveKit's default: one per CPU); with
    `max_rooms`, the worker is full at that many rooms instead of at LiveKit's CPU load.
    """
    return asyncio.run(_main(config, health_port, idle_processes, max_rooms))


def _server_options(idle_processes: int | None, max_rooms: int) -> dict[str, Any]:
    """Return the AgentServer options for the pool size and the capacity asked for."""
    options: dict[str, Any] = {}
    if idle_processes is not None:
        options["num_idle_processes"] = idle_processes
    if max_rooms:
        # LiveKit's default load is the whole machine's CPU, which Home Assistant or a
        # build may be using: past 70 % the worker refuses rooms, and LiveKit does not
        # offer a refused room again. Counting rooms is what a home's workers need.
        options["load_fnc"] = partial(_room_load, max_rooms=max_rooms)
        options["load_threshold"] = 1.0
    return options


async def _main(
    config: WorkerConfig, health_port: int, idle_processes: int | None, max_rooms: int
) -> int:
    # This link stays open while the worker runs: Home Assistant sees a worker (voice
    # available) even while no room is dispatched. Each job opens its own.
    link = HomeLink(config.link_config(), on_event=lambda _: None, on_connection=lambda _: None)
    try:
        settings = await link.wait_settings(60)
        if not settings.livekit:
            raise FatalLinkError(  # noqa: TRY301 - one message for both faults
                f"{settings.title} has no LiveKit server: add one (Reconfigure), or run "
                "the worker in local mode"
            )
    except (FatalLinkError, HomeAway) as err:
        _LOGGER.error("The worker cannot start: %s", err)  # noqa: TRY400 - said, not a bug
        await link.aclose()
        return 2
    server_settings = settings.livekit
    url = config.livekit_url or server_settings["url"]
    server = AgentServer(
        ws_url=url,
        api_key=server_settings["api_key"],
        api_secret=server_settings["api_secret"],
        setup_fnc=_prewarm,
        port=health_port,
        **_server_options(idle_processes, max_rooms),
    )
    server.rtc_session(_job, agent_name=server_settings["agent_name"])
    _LOGGER.info("Registering with LiveKit at %s as %s", url, server_settings["agent_name"])
    try:
        await _serve(server)
    finally:
        await link.aclose()
    return 0


async def _serve(server: AgentServer) -> None:
    import signal

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    running = asyncio.create_task(server.run())
    stopper = asyncio.create_task(stopping.wait())
    await asyncio.wait({running, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        await server.drain(timeout=30)
        await server.aclose()
    stopper.cancel()

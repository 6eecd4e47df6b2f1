"""Run the voice engine as an external worker: `python -m shackleton_voice`.

    python -m shackleton_voice [--config worker.yaml] livekit [--max-rooms N]
        A LiveKit agent worker for the entry's rooms (LiveKit dispatches them); see
        `livekit --help` for its pool and capacity.
    python -m shackleton_voice [--config worker.yaml] local --room kitchen
        One room on local audio, driven by JSON lines on stdin:
        {"play": "request.wav"}, {"silence": 1.5}, {"quit": true}; it writes JSON lines
        to stdout: ready, home, played, spoke, announce.

Settings come from the YAML file and from SHACKLETON_HA_URL, SHACKLETON_TOKEN,
SHACKLETON_ENTRY_ID (and optionally SHACKLETON_NAME, LIVEKIT_URL); see the README.
`shackleton_voice` is `custom_components/shackleton/voice` (a link in the repository,
a copy in the container image): the package Home Assistant runs in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
import signal
import sys
from typing import Any

from .ha_link import FatalLinkError, HomeAway
from .worker import ConfigError, VoiceWorker, WorkerConfig

_LOGGER = logging.getLogger(__name__)
ENV_CONFIG = "SHACKLETON_CONFIG"


def _emit(kind: str, fields: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"event": kind, **fields}) + "\n")
    sys.stdout.flush()


async def run_local(config: WorkerConfig, room: str) -> int:
    """Serve one room on local audio until stdin says quit (or closes)."""
    from .local_audio import LocalAudioInput, LocalAudioOutput, read_wav

    worker = VoiceWorker(config, on_notice=_emit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.async_start()
    except (FatalLinkError, HomeAway) as err:
        _LOGGER.error("The worker cannot start: %s", err)  # noqa: TRY400 - said, not a bug
        await worker.aclose()
        return 2
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await worker.async_serve(room, audio_input=mic, audio_output=speaker)

    async def report_speech() -> None:
        count = 0
        while True:
            count += 1
            segment = await speaker.wait_for_segment(count)
            _emit(
                "spoke",
                {
                    "index": count,
                    "seconds": round(segment.duration, 3),
                    "interrupted": segment.interrupted,
                },
            )

    async def commands() -> None:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            try:
                command = json.loads(line)
            except ValueError:
                _LOGGER.warning("Not a JSON command: %r", line)
                continue
            if "play" in command:
                pcm, rate = await asyncio.to_thread(read_wav, command["play"])
                ended = await mic.play_pcm(pcm, rate)
                _emit("played", {"path": command["play"], "ended": ended})
            elif "silence" in command:
                await mic.play_silence(float(command["silence"]))
            elif command.get("quit"):
                break
        stop.set()

    _emit("ready", {"room": room})
    tasks = [asyncio.create_task(report_speech()), asyncio.create_task(commands())]
    await stop.wait()
    for task in tasks:
        task.cancel()
    mic.close()
    await worker.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the worker."""
    parser = argparse.ArgumentParser(prog="python -m shackleton_voice", description=__doc__)
    parser.add_argument("--config", type=Path, default=os.environ.get(ENV_CONFIG) or None)
    parser.add_argument("--log-level", default=os.environ.get("SHACKLETON_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="mode")
    local = commands.add_parser("local", help="one room on local audio (tests, benchmarks)")
    local.add_argument("--room", default="local")
    livekit = commands.add_parser("livekit", help="a LiveKit agent worker (the default)")
    livekit.add_argument("--health-port", type=int, default=8081)
    livekit.add_argument(
        "--idle-processes",
        type=int,
        help="job processes kept warm for the next room (default: one per CPU)",
    )
    livekit.add_argument(
        "--max-rooms",
        type=int,
        default=0,
        help="rooms this worker serves at once; LiveKit sends more to other workers "
        "(default: as many as the CPU allows, by LiveKit's load)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = WorkerConfig.load(args.config)
    except ConfigError as err:
        sys.stderr.write(f"Configuration error: {err}\n")
        return 2
    if args.mode == "local":
        return asyncio.run(run_local(config, args.room))
    from .livekit_worker import run_livekit

    if args.config is not None:
        os.environ[ENV_CONFIG] = str(args.config)  # the job processes read it too
    return run_livekit(
        config,
        getattr(args, "health_port", 8081),
        idle_processes=getattr(args, "idle_processes", None),
        max_rooms=getattr(args, "max_rooms", 0),
    )


if __name__ == "__main__":
    sys.exit(main())

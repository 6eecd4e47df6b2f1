"""The notebooks' figures (matplotlib): a clip as silero saw it, and a sweep's trade-off."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .audio import RATE, Clip, to_signal
from .vad import Score, Summary, Trace, cost


def plot_clip(
    clip: Clip, pcm: bytes, found: Trace, result: Score, threshold: float, ax: Any = None
) -> Any:
    """Plot the waveform, silero's probability, the threshold, segments and commits."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    signal = to_signal(pcm)
    t = np.arange(len(signal)) / RATE
    ax.plot(t, signal / max(1e-9, float(np.max(np.abs(signal)))) * 0.45 + 0.5, lw=0.4,
            color="0.6", label="waveform")  # fmt: skip
    for start, end in clip.phrases:
        ax.axvspan(start, end, color="tab:green", alpha=0.15, lw=0)
    ax.plot(found.times, found.probability, color="tab:blue", lw=1.2, label="speech probability")
    ax.axhline(threshold, color="tab:blue", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    for segment in found.segments:
        end = segment.ended if segment.ended is not None else clip.duration
        ax.plot(
            [segment.detected, end], [1.04, 1.04], color="tab:orange", lw=4, solid_capstyle="butt"
        )
        ax.plot([segment.captured_from, segment.detected], [1.04, 1.04], color="tab:orange",
                lw=1.5, alpha=0.6)  # fmt: skip
    for at in result.commits:
        ax.axvline(at, color="tab:red", lw=1.2)
    if result.turn is not None and result.delay is not None:
        end = result.turn[1]
        ax.annotate(f"{result.delay * 1000:.0f} ms", xy=(end + result.delay / 2, 0.9),
                    ha="center", color="tab:red", fontsize=8)  # fmt: skip
        ax.annotate("", xy=(end + result.delay, 0.86), xytext=(end, 0.86),
                    arrowprops={"arrowstyle": "->", "color": "tab:red"})  # fmt: skip
    verdict = []
    if result.cut_off:
        verdict.append("CUT OFF")
    if result.missed:
        verdict.append("MISSED")
    if result.false_triggers:
        verdict.append(f"{result.false_triggers} false trigger(s)")
    title = f"{clip.file} · {clip.noise}" + (f" · {', '.join(verdict)}" if verdict else "")
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlim(0, clip.duration + 1)
    ax.set_ylim(-0.02, 1.1)
    ax.set_xlabel("seconds")
    return ax


def plot_clips(
    clips: Sequence[tuple[Clip, bytes]], traces: Sequence[Trace], summary: Summary
) -> Any:
    """Plot every clip of one setting, one row each; return the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(clips), 1, figsize=(10, 1.9 * len(clips)), squeeze=False)
    for ax, (clip, pcm), found, result in zip(
        axes[:, 0], clips, traces, summary.scores, strict=True
    ):
        plot_clip(clip, pcm, found, result, summary.turn.activation_threshold, ax)
        ax.label_outer()
    axes[0, 0].legend(loc="upper right", fontsize=7, ncols=3)
    fig.suptitle(
        "green: speech (labels) · orange: silero's segments (thin: prefix padding) · "
        "red: turn committed",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    return fig


def plot_sweep(
    summaries: Sequence[Summary],
    shipped: Summary,
    recommended: Summary,
    wait_per_error: float = 2.0,
) -> Any:
    """Plot errors against typical wait for every setting; mark shipped and recommended."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    delays = [s.delay(0.5) or 0.0 for s in summaries]
    errors = [s.errors for s in summaries]
    colours = [s.turn.activation_threshold for s in summaries]
    points = left.scatter(delays, errors, c=colours, cmap="viridis", s=40)
    fig.colorbar(points, ax=left, label="activation threshold")
    for mark, label, colour in (
        (shipped, "shipped", "tab:red"),
        (recommended, "recommended", "tab:green"),
    ):
        left.scatter([mark.delay(0.5) or 0.0], [mark.errors], s=180, facecolors="none",
                     edgecolors=colour, lw=2, label=label)  # fmt: skip
    left.set_xlabel("end of request → turn committed, p50 (s)")
    left.set_ylabel("false triggers + cut-offs + misses")
    left.legend(fontsize=8)
    left.set_title("the trade-off", fontsize=10)
    labels = [
        f"{s.turn.activation_threshold:g}/{s.turn.min_silence_duration:g}/{s.turn.min_endpointing_delay:g}"
        for s in summaries
    ]
    costs = [cost(s, wait_per_error) for s in summaries]
    order = np.argsort(costs)
    right.barh([labels[i] for i in order], [costs[i] for i in order], color="tab:blue")
    right.invert_yaxis()
    right.set_xlabel(f"cost (s): p50 wait + {wait_per_error:g} s x errors per clip")
    right.set_title("threshold / min silence / endpointing delay", fontsize=10)
    right.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def plot_candidates(results: Sequence[Any]) -> Any:
    """Bar charts per candidate: cases right, latency p50/p95, tokens per case."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r.candidate for r in results))
    mine = {label: [r for r in results if r.candidate == label] for label in labels}
    fig, (right, latency, tokens) = plt.subplots(1, 3, figsize=(12, 3.2))
    acting = [sum(r.correct for r in mine[c] if r.expected != "refusal") for c in labels]
    refusing = [sum(r.correct for r in mine[c] if r.expected == "refusal") for c in labels]
    right.bar(labels, acting, color="tab:blue", label="right tool calls")
    right.bar(labels, refusing, bottom=acting, color="tab:green", label="right refusals")
    right.axhline(len(mine[labels[0]]), color="0.5", ls="--", lw=0.8)
    right.set_title(f"cases right (of {len(mine[labels[0]])})", fontsize=10)
    right.legend(fontsize=7)
    x = np.arange(len(labels))
    for offset, quantile in ((-0.2, 0.5), (0.2, 0.95)):
        values = [float(np.quantile([r.seconds for r in mine[c]], quantile)) for c in labels]
        latency.bar(x + offset, values, width=0.4, label=f"p{int(quantile * 100)}")
    latency.set_xticks(x, labels)
    latency.set_title("latency per request (s)", fontsize=10)
    latency.legend(fontsize=7)
    per_case = [
        sum(r.prompt_tokens + r.completion_tokens for r in mine[c]) / len(mine[c]) for c in labels
    ]
    tokens.bar(labels, per_case, color="tab:purple")
    tokens.set_title("tokens per request", fontsize=10)
    fig.tight_layout()
    return fig

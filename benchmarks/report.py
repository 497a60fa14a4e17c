"""The suite's report: results.md (one Markdown table per scenario) and the PNG plots.

    .venv/bin/python benchmarks/report.py benchmarks/results/results.json   # re-render from a results file

`benchmarks/run.py` calls `write_report` after a run; this module only reads
the results dict (benchmarks/README.md describes every field it shows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PLOTS = {"scaling": "scaling.png", "memory": "memory.png"}


# -- formatting --------------------------------------------------------------------------


def _n(x, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    return f"{x:,.{digits}f}"


def _v(x) -> str:
    """An axis value: 1,000,000 rather than 1e+06; 0.5 as is."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _r(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _mb(b) -> str:
    return "-" if b is None else f"{b / 1e6:,.1f}"


def _table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _state(entry: dict) -> str | None:
    """A skipped or failed scenario's one-line explanation, else None."""
    if "skipped" in entry:
        return f"_Skipped: {entry['skipped']}_" + (f" ({entry['detail']})" if entry.get("detail") else "")
    if "error" in entry:
        return f"_Error: {entry['error']}_"
    return None


# -- one section per scenario --------------------------------------------------------------


def _engine(s: dict) -> list[str]:
    p, r = s["params"], s["results"]
    floor, engine = r["floor"], r["engine"]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    lines = [f"{r['records']:,} pre-read records, {r['chats']:,} chats ({r['tracked_chats']:,} active), "
             f"{r['partitions']} partitions, fault density {p['fault_density']:g}x, batches of {p['batch']:,}, "
             f"median of {r['repeats']} runs.", ""]
    lines += _table(["loop", "events/s", "seconds", "ratio to floor"], [
        ["floor (parse + dict update)", _n(floor["events_per_s"]), f"{med(floor['seconds']):.3f}", "1.00"],
        ["engine `process`", _n(engine["events_per_s"]), f"{med(engine['seconds']):.3f}", f"**{_r(r['ratio'])}**"],
        ["engine `process` + `finish`", _n(engine["events_per_s_with_finish"]),
         f"{med(engine['seconds']) + med(engine['finish_seconds']):.3f}",
         _r(engine["events_per_s_with_finish"] / floor["events_per_s"])],
    ])
    lines += ["", f"Finding counts equal what the workload injected: {_n(r['counts_match_expected'])}."]
    return lines


def _replay(s: dict) -> list[str]:
    r = s["results"]
    lines = [f"A kcat dump of {r['records']:,} records ({r['dump_bytes'] / 1e6:,.0f} MB), {r['chats']:,} chats.", ""]
    lines += _table(["loop", "records/s", "seconds", "ratio to floor"], [
        ["floor (read, parse envelope and payload, dict update)", _n(r["floor"]["records_per_s"]),
         f"{r['floor']['seconds']:.2f}", "1.00"],
        ["`auditor.replay.replay`", _n(r["replay"]["records_per_s"]), f"{r['replay']['seconds']:.2f}",
         f"**{_r(r['ratio'])}** (target >= {r['target_ratio']})"],
    ])
    lines += ["", f"Finding counts equal what the workload injected: {_n(r['replay']['counts_match_expected'])}."]
    rss = r.get("rss")
    if rss:
        lines += ["", f"Peak RSS of a replay in a fresh interpreter, {rss['chats']} chats, benign noise, "
                      "formula authority:", ""]
        lines += _table(["records", "active chats", "RSS before (MB)", "peak RSS (MB)"], [
            [_n(x["records"]), _n(x["active_chats"]), _n(x["baseline_kb"] / 1024, 1), _n(x["peak_kb"] / 1024, 1)]
            for x in rss["sizes"]])
        lines += ["", f"Peak ratio {_r(rss['ratio'])}; the replay's own growth ratio "
                      f"{_r(rss['replay_growth_ratio'])} for {rss['sizes'][1]['records'] / rss['sizes'][0]['records']:.1f}x "
                      "the records (near 1: state flat in records)."]
    return lines


def _live(s: dict) -> list[str]:
    p, r = s["params"], s["results"]
    raw = r["raw_consume"]
    lines = [f"{r['records']:,} records on Tansu, {p['partitions']} partitions per topic, {p['chats']:,} chats; "
             f"produced at {_n(r['produce']['records_per_s'])} records/s; session timeout {p['session_timeout_ms']} ms; "
             f"each loop's median of {p.get('repeats', 1)} run(s), all runs' rates in results.json.", ""]
    rows = [["raw aiokafka loop (getmany + orjson + dict update)", _n(raw["events_per_s"]), f"{raw['seconds']:.2f}",
             f"{raw['join_seconds']:.1f}", _n(raw.get("first_batch_seconds"), 2),
             _n(raw.get("events_per_s_after_first_batch")), "1.00", "1.00", ""]]
    for variant, got in r["live"].items():
        name = f"`LiveAuditor`, authority: {variant}" + (" (verification: anomalies)" if variant == "dynamodb" else "")
        state = _state(got)
        if state:
            rows.append([name, "-", "-", "-", "-", "-", "-", "-", state])
            continue
        notes = [f"{got['checkpoints']:.0f} checkpoints"]
        if "drain_seconds" in got:
            notes.append(f"drain {got['drain_seconds']:.1f}s")
        if "counts_match_reference" in got:
            notes.append(f"counts match the reference: {_n(got['counts_match_reference'])}")
        rows.append([name, _n(got["events_per_s"]), f"{got['seconds']:.2f}", f"{got['join_seconds']:.1f}",
                     _n(got.get("first_batch_seconds"), 2), _n(got.get("events_per_s_after_first_batch")),
                     f"**{_r(got['ratio_to_raw'])}**", _r(got.get("ratio_to_raw_after_first_batch")),
                     ", ".join(notes)])
    lines += _table(["loop", "events/s", "seconds", "join (s)", "first batch (s)", "events/s after it",
                     "ratio to raw", "ratio after first batch", "notes"], rows)
    return lines


def _authority(s: dict) -> list[str]:
    r = s["results"]
    export = r["export"]["records_per_s"]
    lines = [f"{r['records']:,} records, {r['messages']:,} messages, {r['chats']:,} chats; tables loaded into "
             f"DynamoDB Local in {r['load_seconds']:.1f}s. Per 1,000 messages; strongly consistent reads "
             "(1 RCU per item under 4 KB).", ""]
    rows = [["export (in memory)", _n(export), "1.00", "0", "0", "0", "-"]]
    for run in r["live"]:
        name = run["policy"] + (f" {run['sample_rate']:g}" if run.get("sample_rate") else "")
        rows.append([f"DynamoDB Local, `{name}`", _n(run["records_per_s"]), _r(run["records_per_s"] / export),
                     _n(run["requests_per_1k_messages"], 1), _n(run["keys_per_1k_messages"], 1),
                     _n(run["rcu_per_1k_messages"], 1), f"**{_n(run['keys_per_request'], 1)}**"])
    lines += _table(["path", "records/s", "vs export", "requests", "keys", "RCU", "keys/request"], rows)
    ends = r["live"][0].get("end_of_run_requests", {}) if r["live"] else {}
    lines += ["", f"End of run, the same for every policy: {', '.join(f'{int(v)} {k}' for k, v in ends.items())}. "
                  f"Target keys per request under steady load: >= {r.get('target_keys_per_request', 80)}. "
                  "DynamoDB Local's speed says nothing about AWS's: compare rows, not machines."]
    return lines


def _memory(s: dict) -> list[str]:
    r = s["results"]
    rows = []
    for x in r["points"]:
        rows.append([_n(x["chats"]), f"{x['messages_per_chat']:g}", _n(x["messages"]), _n(x["tracked_chats"]),
                     _mb(x["state_bytes"]), f"**{_n(x['bytes_per_tracked_chat'])}**", _n(x["bytes_per_message"]),
                     _mb(x["peak_rss_growth_bytes"]), _n(x["peak_rss_bytes_per_tracked_chat"])])
    lines = ["Engine state measured by the allocators (engine alive minus dropped), fresh interpreter per point, "
             "uniform activity, benign noise, formula authority.", ""]
    lines += _table(["chats", "msgs/chat", "messages", "tracked chats", "state (MB)", "B/tracked chat", "B/message",
                     "peak RSS growth (MB)", "peak RSS B/chat"], rows)
    fit = r.get("fit")
    if fit:
        lines += ["", f"Fit over the points: **{_n(fit['bytes_per_tracked_chat'])} B per tracked chat + "
                      f"{_n(fit['bytes_per_message'])} B per message** inside the delivery window "
                      f"(worst point off by {fit['max_relative_error']:.1%})."]
    check = r.get("tracemalloc_check")
    if check:
        lines += ["", f"Cross-check at {check['chats']:,} chats: tracemalloc {_mb(check['tracemalloc_state_bytes'])} MB, "
                      f"allocators {_mb(check['heap_state_bytes'])} MB (ratio {check['heap_over_tracemalloc']:.2f}: "
                      "allocator rounding and headers)."]
    return lines


AXIS_NAMES = {"chats": "chats", "partitions": "partitions per topic", "density": "fault density (x FAULT_MIX)"}


def _scaling(s: dict) -> list[str]:
    p, r = s["params"], s["results"]
    base = p["base"]
    lines = [f"{p['records']:,} records per point, median of {p['repeats']}; base point: {base['chats']:,} chats, "
             f"{base['partitions']} partitions, density {base['density']:g}x; one factor moves at a time."]
    for axis, points in r.items():
        lines += ["", f"**{AXIS_NAMES.get(axis, axis)}**", ""]
        lines += _table([axis, "engine events/s", "floor events/s", "ratio", "faults injected", "counts match"], [
            [_v(x["value"]), _n(x["engine"]["events_per_s"]), _n(x["floor"]["events_per_s"]), _r(x["ratio"]),
             _n(x["faults_injected"]), _n(x["counts_match_expected"])] for x in points])
    return lines


SECTIONS = {
    "engine": ("Engine only: `AuditEngine.process` vs the floor loop", _engine),
    "replay": ("Replay of a generated dump vs the floor loop (bench_replay)", _replay),
    "live": ("Live consumer vs the raw aiokafka consume loop (bench_live, bench_consume)", _live),
    "authority": ("Authority verification: DynamoDB reads per policy (bench_authority)", _authority),
    "memory": ("Memory: bytes per tracked chat and per message (bench_memory)", _memory),
    "scaling": ("Scaling: events/s as chats, partitions and fault density grow (bench_engine --scaling)", _scaling),
}


def markdown(results: dict) -> str:
    suite, m = results["suite"], results["machine"]
    git = m.get("git", {})
    lines = [f"# Benchmark results ({suite['mode']})", "",
             f"`{suite['command']}` — {suite['started_at']}, {suite['seconds']:.0f} s.", "",
             f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, {(m['memory_bytes'] or 0) / 2**30:.0f} GiB, "
             f"{m['platform']}, Python {m['python']}. Commit {git.get('commit', '?')[:12]}"
             + (" (with uncommitted changes)" if git.get("dirty") else "") + ".", "",
             "How to read every table and plot: benchmarks/README.md. Figures from one run on a shared machine: "
             "compare the ratios, which hold across machines far better than the rates.", ""]
    head = results.get("headline", {})
    if head:
        lines += ["## Headline", ""]
        lines += _table(["figure", "value"], [[k, v] for k, v in head.items()])
        lines.append("")
    for name, (title, render) in SECTIONS.items():
        entry = results["scenarios"].get(name)
        lines += [f"## {title}", ""]
        if entry is None:
            lines += ["_Not run._", ""]
            continue
        state = _state(entry)
        lines += [state] if state else render(entry)
        if "seconds" in entry:
            lines += ["", f"<sub>scenario wall time {entry['seconds']:.1f} s</sub>"]
        lines.append("")
    plots = [f"![{name}]({file})" for name, file in results.get("plots", {}).items()]
    if plots:
        lines += ["## Plots", "", *plots, ""]
    return "\n".join(lines)


# -- plots ---------------------------------------------------------------------------------


def plot_scaling(scaling: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    p, r = scaling["params"], scaling["results"]
    axes_names = list(r)
    fig, axes = plt.subplots(1, len(axes_names), figsize=(5 * len(axes_names), 4.4), squeeze=False)
    for ax, axis in zip(axes[0], axes_names):
        points = r[axis]
        xs = [x["value"] for x in points]
        engine = [x["engine"]["events_per_s"] / 1e3 for x in points]
        floor = [x["floor"]["events_per_s"] / 1e3 for x in points]
        ax.plot(xs, floor, "s--", color="tab:gray", label="floor (parse + dict)")
        ax.plot(xs, engine, "o-", color="tab:blue", label="engine process")
        for x, y, pt in zip(xs, engine, points):
            ax.annotate(f"{pt['ratio']:.2f}", (x, y), textcoords="offset points", xytext=(0, -14), ha="center",
                        fontsize=8, color="tab:blue")
        if axis == "density":
            ax.set_xscale("symlog", linthresh=1)
        else:
            ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([_v(x) for x in xs], fontsize=8)
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_xlabel(AXIS_NAMES.get(axis, axis))
        ax.set_ylabel("thousand events/s")
        others = {k: v for k, v in p["base"].items() if k != axis}
        ax.set_title(f"vs {axis} ({', '.join(f'{k} {_v(v)}' for k, v in others.items())})", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Engine throughput scaling ({p['records']:,} records per point; labels: engine/floor ratio)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory(memory: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    points = memory["results"]["points"]
    fit = memory["results"].get("fit")
    densities = sorted({x["messages_per_chat"] for x in points})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    for i, d in enumerate(densities):
        pts = sorted((x for x in points if x["messages_per_chat"] == d), key=lambda x: x["chats"])
        color = f"C{i}"
        chats = [x["chats"] for x in pts]
        left.plot(chats, [x["state_bytes"] / 1e6 for x in pts], "o-", color=color, label=f"{d:g} msg/chat: state")
        left.plot(chats, [x["peak_rss_growth_bytes"] / 1e6 for x in pts], "x:", color=color,
                  label=f"{d:g} msg/chat: peak RSS growth")
        right.plot(chats, [x["bytes_per_tracked_chat"] for x in pts], "o-", color=color,
                   label=f"{d:g} msg/chat: per tracked chat")
        right.plot(chats, [x["bytes_per_message"] for x in pts], "^--", color=color,
                   label=f"{d:g} msg/chat: per message")
    if fit:
        right.axhline(fit["bytes_per_tracked_chat"], color="black", lw=0.8,
                      label=f"fit: {fit['bytes_per_tracked_chat']:,.0f} B/chat")
        right.axhline(fit["bytes_per_message"], color="black", lw=0.8, ls="--",
                      label=f"fit: {fit['bytes_per_message']:,.0f} B/message")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ticks = sorted({x["chats"] for x in points})
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:,}" for t in ticks], fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("chats (population; tracked = received at least one event)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if len(ticks) == 1:
        for ax in (left, right):
            ax.set_xlim(ticks[0] / 3, ticks[0] * 3)
    left.set_yscale("log")
    left.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    left.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if str(int(v))[0] in "25" else ""))
    left.tick_params(axis="y", which="minor", labelsize=7)
    left.set_ylabel("MB")
    left.set_title("Engine state and peak RSS growth", fontsize=9)
    right.set_ylim(bottom=0)
    right.set_ylabel("bytes")
    right.set_title("Bytes per tracked chat and per message", fontsize=9)
    fig.suptitle("Engine memory (benign noise, formula authority, fresh interpreter per point)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(results: dict, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    written = {}
    for name, plot in (("scaling", plot_scaling), ("memory", plot_memory)):
        entry = results["scenarios"].get(name)
        if entry and "results" in entry:
            plot(entry, out / PLOTS[name])
            written[name] = PLOTS[name]
    return written


def write_report(results: dict, out: Path) -> None:
    """results.md and the PNGs into `out` (results.json is the caller's)."""
    out.mkdir(parents=True, exist_ok=True)
    results["plots"] = write_plots(results, out)
    (out / "results.md").write_text(markdown(results))


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/results.json")
    data = json.loads(source.read_text())
    write_report(data, source.parent)
    source.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {source.parent / 'results.md'} and {', '.join(data['plots'].values()) or 'no plots'}")

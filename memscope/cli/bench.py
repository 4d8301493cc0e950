"""`memscope bench retrieval|ingest|embed|longrun|soak|locomo|locomo-qa` (run from a source checkout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memscope.cli._app import EXIT_INVALID, ConfigOpt, app, load_or_exit
from memscope.config import settings_to_dict
from memscope.errors import MemscopeError

__all__ = ["bench_app"]

bench_app = typer.Typer(help="Latency, throughput and LoCoMo benchmarks (from a memscope source checkout).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(bench_app, name="bench")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]


def _bench(module: str):  # type: ignore[no-untyped-def]
    """benchmarks.<module>: the benchmarks live in the source tree, not in the installed package, so an
    uninstalled `benchmarks` package is loaded from the checkout in the working directory by its path
    (sys.path is left alone)."""
    import importlib
    import importlib.util
    import sys

    try:
        return importlib.import_module(f"benchmarks.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", f"benchmarks.{module}"):
            raise
    folder = Path.cwd() / "benchmarks"
    if not (folder / f"{module}.py").exists():
        typer.echo("`memscope bench` needs the benchmarks/ folder: run it from a memscope source checkout", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    spec = importlib.util.spec_from_file_location(
        "benchmarks", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = package  # its modules' `from benchmarks._common import ...` resolve by its path
    spec.loader.exec_module(package)
    return importlib.import_module(f"benchmarks.{module}")


@bench_app.command("retrieval")
def bench_retrieval(
    memories: Annotated[list[int], typer.Option("--memories", "-n", help="Memories in the store (repeatable).")],
    users: Annotated[int, typer.Option(help="Users the memories are spread over; the timed one has N/U.")] = 1,
    queries: Annotated[int, typer.Option(help="Timed retrievals.")] = 200,
    top_k: Annotated[int, typer.Option("--top-k", help="Results per retrieval.")] = 10,
    store: Annotated[list[str] | None, typer.Option(
        "--store", help="sqlite or elasticsearch (repeatable: each measured in the same run).")] = None,
    es_url: Annotated[str | None, typer.Option(help="Elasticsearch URL (default MEMSCOPE_ES_URL).")] = None,
    embedder: Annotated[str, typer.Option(
        help="local: each query embedded by the packaged MiniLM (onnxruntime, int8 query graph; timed); "
             "local-numpy / local-onnx-fp32: the numpy forward pass / the fp32 graph; precomputed: no model."
    )] = "local",
    locomo: Annotated[Path | None, typer.Option(
        help="LoCoMo data folder: add rows at LoCoMo size (real turns, real questions, local MiniLM).")] = None,
    locomo_conversations: Annotated[int, typer.Option(help="Conversations for the --locomo rows.")] = 1,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of p50/p95 against store size here.")] = None,
    keep: Annotated[Path | None, typer.Option(
        help="Keep each filled SQLite store in this folder and reuse it on later runs of the same size "
             "(a 1M store takes ~40 minutes to fill and index).")] = None,
    writes: Annotated[int, typer.Option(
        min=0, help="Then time a retrieval right after each of N one-memory writes (fresh stores, not --keep).")] = 0,
    against: Annotated[Path | None, typer.Option(
        help="A retrieve_memory operation file: each question also runs through it, alternating with the "
             "shipped one (paired timing: the machine's drift cancels out).")] = None,
    json_out: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Time the real retrieve_memory operation on fresh stores (synthetic memories, precomputed vectors)."""
    bench = _bench("retrieval")
    if embedder not in (*bench.EMBEDDERS, "precomputed"):
        typer.echo(f"unknown embedder {embedder}; choose from {', '.join([*bench.EMBEDDERS, 'precomputed'])}", err=True)
        raise typer.Exit(EXIT_INVALID)
    if keep is not None and writes:
        typer.echo("--writes changes the store it times: run it without --keep (on fresh stores)", err=True)
        raise typer.Exit(EXIT_INVALID)
    if against is not None:
        try:
            bench.against_catalog(against)
        except (OSError, ValueError, MemscopeError) as exc:
            typer.echo(f"--against {against}: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
    show = not (no_progress or json_out)
    results = [
        bench.run_retrieval_bench(n, users, queries, top_k, show_progress=show, store_kind=kind, es_url=es_url,
                                  embedder=embedder, keep=keep, writes=writes, against=against)
        for kind in (store or ["sqlite"])
        for n in memories
    ]  # fmt: skip
    if locomo is not None:
        results += bench.run_locomo_latency(locomo, locomo_conversations, top_k, show_progress=show,
                                            embedder=embedder, against=against)  # fmt: skip
    bench.report(results, json_out)
    if plot is not None:
        bench.plot(results, plot)


@bench_app.command("ingest")
def bench_ingest(
    messages: Annotated[int, typer.Option(help="Timed add_messages calls (one message each).")] = 1000,
    json_out: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """add_messages acknowledgement latency: embedded, and with Celery when Redis on 127.0.0.1:6379 answers."""
    bench = _bench("ingest")
    bench.report(bench.run_ingest_bench(messages, show_progress=not (no_progress or json_out)), json_out)


@bench_app.command("longrun")
def bench_longrun(
    minutes: Annotated[float, typer.Option(help="How long the process keeps working.")] = 5.0,
    samples: Annotated[int, typer.Option(min=2, help="Resource samples, evenly spaced.")] = 6,
    job_every: Annotated[int, typer.Option(min=1, help="Retrieves per consolidation job.")] = 5,
    retrieves: Annotated[int | None, typer.Option(help="Stop after this many retrieves instead.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """One long-lived process doing retrieves and jobs: open fds, threads and RSS over time (flat = no leak)."""
    bench = _bench("longrun")
    bench.report(bench.run_longrun(minutes, samples, job_every, retrieves=retrieves), json_out)


@bench_app.command("embed")
def bench_embed(
    backend: Annotated[
        list[str] | None,
        typer.Option(help="numpy, onnx-fp32, onnx-int8 (built in) or sentence-transformers; repeatable."),
    ] = None,
    queries: Annotated[int, typer.Option(help="Texts embedded one at a time.")] = 200,
    batches: Annotated[int, typer.Option(help="Batches of 64 texts.")] = 5,
    json_out: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Local embedders side by side: install size, first vector in a fresh process, vectors/s, peak RSS."""
    bench = _bench("embed")
    chosen = backend or list(bench.BACKENDS)
    unknown = sorted(set(chosen) - set(bench.BACKENDS))
    if unknown:
        typer.echo(f"unknown backend {', '.join(unknown)}; choose from {', '.join(bench.BACKENDS)}", err=True)
        raise typer.Exit(EXIT_INVALID)
    rows = bench.run_embed_bench(chosen, queries, batches, show_progress=not (no_progress or json_out))
    bench.report(rows, json_out)


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(help="How long messages are added and faults injected.")] = 2.0,
    users: Annotated[int, typer.Option(help="Users receiving messages.")] = 8,
    workers: Annotated[int, typer.Option(help="Celery worker processes.")] = 3,
    kill_every: Annotated[float, typer.Option(help="Seconds between SIGKILLs of a random worker.")] = 20.0,
    rates: Annotated[str | None, typer.Option(help="Model faults per call, e.g. 429=0.03,500=0.03,"
                                                   "timeout=0.005,invalid_json=0.02.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fault soak on Celery workers, beat and a private Redis (SQLite; Elasticsearch too with MEMSCOPE_ES_URL)."""
    bench = _bench("soak")
    argv = ["--minutes", str(minutes), "--users", str(users), "--workers", str(workers),
            "--kill-every", str(kill_every), *(["--rates", rates] if rates else []), *(["--json"] if json_out else [])]
    bench.main(argv)


DataOpt = Annotated[Path, typer.Option("--data", help="Folder of LoCoMo conv-*.json files.", exists=True,
                                        file_okay=False)]  # fmt: skip
KOpt = Annotated[int, typer.Option("--k", help="Items retrieved per question.")]


@bench_app.command("locomo")
def bench_locomo(
    data: DataOpt,
    k: KOpt = 10,
    limit_conversations: Annotated[int | None, typer.Option(help="Only the first N conversations.")] = None,
    consolidate: Annotated[bool, typer.Option(help="Consolidate with the configured LLM first.")] = False,
    embed_cache: Annotated[Path | None, typer.Option(help="Keep turn/question vectors in this .npz file.")] = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """LoCoMo retrieval recall@k (categories 1-4) with the local embedder; no LLM unless --consolidate."""
    bench = _bench("locomo")
    settings = settings_to_dict(load_or_exit(config), mask_secrets=False)
    if not consolidate:
        settings["llm"] = {"backend": "none"}
    summary = bench.run_locomo(data, k, limit_conversations, consolidate, settings,
                               show_progress=not (no_progress or json_out), embed_cache=embed_cache)  # fmt: skip
    bench.report(summary, json_out)


@bench_app.command("locomo-qa")
def bench_locomo_qa(
    data: DataOpt,
    k: KOpt = 10,
    limit_questions: Annotated[int | None, typer.Option(help="Only the first N scored questions.")] = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Answer LoCoMo questions from retrieved memory with the configured LLM; an LLM judge scores them (J)."""
    from memscope.errors import NoModelConfigured

    bench = _bench("locomo_qa")
    settings = load_or_exit(config)
    try:
        summary = bench.run_locomo_qa(data, settings, k, limit_questions, show_progress=not (no_progress or json_out))
    except NoModelConfigured as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    bench.report(summary, json_out)

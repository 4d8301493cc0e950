"""The `memscope` command: `memscope --help`, `memscope version`, `memscope config check|show`.

Problems and YAML are printed with plain `typer.echo` so that each stays on one line whatever the
terminal width (rich would wrap and could eat `[...]` as markup). Exit codes: 0 ok, 2 invalid config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from memscope import __version__
from memscope.config import Settings, config_line, env_config_path, load_settings, settings_to_dict
from memscope.errors import ConfigError

__all__ = ["app", "config_app", "main"]

EXIT_INVALID = 2

app = typer.Typer(
    name="memscope",
    help="Long-term memory for LLM chatbots: check configs, run operations, workers and jobs.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
# Other command groups are added here, each a typer.Typer in its own module, e.g.:
#   app.add_typer(ops_app, name="ops")          # list / validate / run operations
#   app.add_typer(workers_app, name="workers")  # list registered workers and their fields
#   app.add_typer(es_app, name="es")            # create indices, re-embed, inspect Elasticsearch
#   app.add_typer(jobs_app, name="jobs")        # enqueue, sweep, celery worker / beat helpers
#   app.add_typer(bench_app, name="bench")      # latency, throughput and LoCoMo benchmarks
# Import heavy dependencies (numpy, torch, openai, elasticsearch) inside the commands, not here.

PathArg = Annotated[
    Path | None,
    typer.Argument(help="Config file; default: $MEMSCOPE_CONFIG, else the built-in defaults.", show_default=False),
]


@app.command()
def version() -> None:
    """Print memscope's version."""
    typer.echo(f"memscope {__version__}")


@config_app.command("check")
def config_check(path: PathArg = None) -> None:
    """Validate a config file; print every problem as FILE:LINE: key: message (exit 2 if any)."""
    settings = _load_or_exit(path)
    problems = _startup_problems(settings, path)
    if problems:  # valid YAML that start-up would still refuse: a worker module or an operations folder
        for problem in problems:
            typer.echo(problem)
        typer.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"ok: {_describe_source(path)}")
    typer.echo(summary(settings))


def _startup_problems(settings: Settings, path: Path | None) -> list[str]:
    """What loading the operations and worker modules would refuse, each as FILE:LINE: message."""
    from memscope.engine import OperationCatalog
    from memscope.errors import OperationLoadError

    try:
        OperationCatalog(paths=settings.operations.paths, worker_modules=settings.workers.modules)
    except (OperationLoadError, ConfigError) as exc:
        source = path or env_config_path()
        line = config_line(source, ("workers", "modules")) if source else None
        where = f"{source}:{line}: " if line else (f"{source}: " if source else "")
        return [where + p if p.startswith("workers.modules") else p for p in exc.problems]
    return []


@config_app.command("show")
def config_show(path: PathArg = None) -> None:
    """Print the resolved settings as YAML (defaults filled in, ${VAR} resolved, secrets masked)."""
    settings = _load_or_exit(path)
    typer.echo(f"# resolved from {_describe_source(path)}")
    typer.echo(yaml.safe_dump(settings_to_dict(settings), sort_keys=False, allow_unicode=True), nl=False)


# -- operations and workers -----------------------------------------------------------------------
ops_app = typer.Typer(help="List, show and validate operations.", no_args_is_help=True)
workers_app = typer.Typer(help="List the registered workers.", no_args_is_help=True)
app.add_typer(ops_app, name="ops")
app.add_typer(workers_app, name="workers")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config file (for user operations/workers).")]


def _catalog(config: Path | None):  # type: ignore[no-untyped-def]
    from memscope.engine import OperationCatalog
    from memscope.errors import OperationLoadError

    settings = _load_or_exit(config)
    try:
        return OperationCatalog(paths=settings.operations.paths, worker_modules=settings.workers.modules)
    except (OperationLoadError, ConfigError) as exc:
        for problem in exc.problems:
            typer.echo(problem)
        raise typer.Exit(EXIT_INVALID) from None


@ops_app.command("list")
def ops_list(config: ConfigOpt = None) -> None:
    """Name, mode and description of every operation (built-in and the config's folders)."""
    catalog = _catalog(config)
    width = max(len(n) for n in catalog.names())
    for name in catalog.names():
        spec = catalog.get(name)
        origin = "" if spec.builtin else f"  [{spec.source}]"
        typer.echo(f"{name:<{width}}  {spec.mode:<6}  {spec.description}{origin}")


@ops_app.command("show")
def ops_show(name: str, config: ConfigOpt = None) -> None:
    """An operation's inputs and steps, with each worker's params and the fields it reads and writes."""
    from memscope.engine import ParallelGroup

    catalog = _catalog(config)
    try:
        spec = catalog.get(name)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"{spec.name} ({spec.mode}) from {spec.source}\n  {spec.description}")
    typer.echo("inputs: " + ", ".join(k if repr(v) == "REQUIRED" else f"{k}={v!r}" for k, v in spec.inputs.items()))
    for index, item in enumerate(spec.steps, start=1):
        steps = item.branches if isinstance(item, ParallelGroup) else [item]
        if isinstance(item, ParallelGroup):
            typer.echo(f"{index}. parallel:")
        for step in steps:
            assert step.worker_cls is not None and step.params is not None
            indent = "     - " if isinstance(item, ParallelGroup) else f"{index}. "
            params = step.params.model_dump()
            reads = ", ".join(step.worker_cls.declared_reads(step.params)) or "-"
            writes = ", ".join(step.worker_cls.declared_writes(step.params)) or "-"
            typer.echo(f"{indent}{step.worker} {params}  reads: {reads}  writes: {writes}")


@ops_app.command("validate")
def ops_validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Operation files; default: built-ins.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate operation files; each problem on its own line as FILE:LINE:COL: message (exit 2 if any)."""
    from memscope.engine import builtin_operation_files, load_operation
    from memscope.engine.registry import load_worker_modules
    from memscope.errors import OperationLoadError

    settings = _load_or_exit(config) if config else None
    if settings:
        load_worker_modules(settings.workers.modules)
    files = list(paths or builtin_operation_files())
    problems: list[str] = []
    for file in files:
        try:
            load_operation(file)
        except OperationLoadError as exc:
            problems.extend(exc.problems)
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"ok: {len(files)} operation file{'s' if len(files) != 1 else ''} valid")


@workers_app.command("list")
def workers_list(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Every registered worker: name, what it does, whether it calls an LLM, its prompt languages."""
    import json

    from memscope.engine import registered_workers
    from memscope.engine.registry import load_worker_modules

    if config:
        load_worker_modules(_load_or_exit(config).workers.modules)
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "description": cls.summary(),
            "uses_llm": cls.uses_llm,
            "prompt_languages": list(cls.prompt_languages),
            "reads": list(cls.reads),
            "writes": list(cls.writes),
        }
        for name, cls in registered_workers().items()
    ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        llm = "llm" if r["uses_llm"] else "   "
        langs = ",".join(r["prompt_languages"]) or "-"
        typer.echo(f"{r['name']:<{width}}  {llm}  {langs:<5}  {r['description']}")
    typer.echo(f"{len(rows)} workers")


# -- demo and chat --------------------------------------------------------------------------------
@app.command()
def demo(
    config: ConfigOpt = None,
    store: Annotated[
        Path | None, typer.Option(help="Keep the demo's store in this file (default: a temp file).")
    ] = None,
) -> None:
    """Run a scripted multi-session conversation through the whole system and show what it remembers."""
    from memscope.demo import run_demo

    settings = _load_or_exit(config)
    run_demo(settings, store_path=store)


@app.command()
def chat(
    user: Annotated[str, typer.Option("--user", "-u", help="Whose memory to use.")],
    session: Annotated[str | None, typer.Option(help="Session id (default: a new one).")] = None,
    config: ConfigOpt = None,
) -> None:
    """An interactive chatbot with memory. Commands: /memories, /forget ID, /consolidate, /exit."""
    from memscope.api import MemoryScope
    from memscope.errors import MemscopeError
    from memscope.models import new_id

    settings = _load_or_exit(config)
    with MemoryScope(settings) as memory:
        if not memory.runtime.has_llm:
            typer.echo(
                "chat needs an LLM: set OPENAI_API_KEY (with OPENAI_BASE_URL for a compatible server) "
                "or DASHSCOPE_API_KEY, or llm.backend in the config.",
                err=True,
            )
            raise typer.Exit(EXIT_INVALID)
        session_id = session or new_id()
        typer.echo(f"memscope chat as {user!r} (session {session_id}); /exit to leave")
        while True:
            try:
                line = input("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not line:
                continue
            if line in ("/exit", "/quit"):
                break
            try:
                if line == "/memories":
                    for node in memory.list_memories(user):
                        typer.echo(f"  {node.id}  [{node.memory_type.value}] {node.content}")
                elif line.startswith("/forget"):
                    target = line.removeprefix("/forget").strip()
                    deleted = memory.delete_memory(user, target) if target else []
                    typer.echo(f"  forgot {len(deleted)} memor{'y' if len(deleted) == 1 else 'ies'}")
                elif line == "/consolidate":
                    record = memory.consolidate(user, wait=True)
                    typer.echo(f"  consolidation {getattr(record, 'state', record)}")
                else:
                    typer.echo(f"bot> {memory.chat(user, line, session_id=session_id)}")
            except MemscopeError as exc:
                typer.echo(f"  error: {exc}", err=True)


@app.command()
def reembed(config: ConfigOpt = None) -> None:
    """Re-embed every message and memory with the configured embedding model (after changing it)."""
    from memscope.errors import MemscopeError
    from memscope.reembed import reembed as run_reembed

    settings = _load_or_exit(config)
    try:
        counts = run_reembed(settings, progress=lambda user, n: typer.echo(f"  {n} users done", err=True))
    except MemscopeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {counts['messages']} messages and {counts['memories']} memories of {counts['users']} users")


# -- elasticsearch --------------------------------------------------------------------------------
es_app = typer.Typer(help="Create and migrate the Elasticsearch indices.", no_args_is_help=True)
app.add_typer(es_app, name="es")


def _es_store(config: Path | None):  # type: ignore[no-untyped-def]
    from memscope.runtime import open_store

    settings = _load_or_exit(config)
    if settings.store.backend != "elasticsearch":
        typer.echo("the config's store.backend is not elasticsearch; use configs/distributed.yaml", err=True)
        raise typer.Exit(EXIT_INVALID)
    return open_store(settings)


@es_app.command("init")
def es_init(config: ConfigOpt = None) -> None:
    """Put the index templates and create the indices and aliases (idempotent)."""
    from memscope.errors import MemscopeError

    store = _es_store(config)
    try:
        store.init_indices()
        features = store.features()
    except MemscopeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    analysis = "analysis-common: stemming and CJK bigrams" if features.analysis_common else "server core only"
    server = ".".join(map(str, features.version))
    typer.echo(f"ok: indices and aliases {store.index_prefix}-* ready on Elasticsearch {server} ({analysis})")


@es_app.command("migrate")
def es_migrate(
    version: Annotated[int, typer.Argument(help="The new template version.")],
    delete_old: Annotated[bool, typer.Option(help="Delete the old indices after the alias moved.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Copy into a new template version and move the aliases atomically (stop writers first; resumable)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from memscope.errors import MemscopeError

    store = _es_store(config)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True)
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(kind: str, done: int, total: int) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(kind, total=total)
            bar.update(tasks[kind], completed=done, total=max(total, done))

        try:
            moved = store.migrate(version, delete_old=delete_old, progress=progress)
        except MemscopeError as exc:
            typer.echo(f"error: {exc} (run the same command again to resume)", err=True)
            raise typer.Exit(1) from None
    for kind, old, new in moved:
        typer.echo(f"{kind}: {old} -> {new}")
    if not moved:
        typer.echo(f"nothing to do: every index is at version {version} or later")


def summary(settings: Settings) -> str:
    """A few lines naming the chosen backends, for people checking a config."""
    data = settings_to_dict(settings)  # masked: URLs may carry passwords
    store = settings.store
    where = store.path if store.backend == "sqlite" else data["store"]["elasticsearch"]["url"]
    jobs = settings.jobs
    local = jobs.backend == "local"
    runner = f"{jobs.local.threads} threads" if local else data["jobs"]["celery"]["broker_url"]
    models = [
        f"embedding: {settings.embedding.backend}" + _model(settings.embedding.model),
        f"llm: {settings.llm.backend}" + _model(settings.llm.model),
        f"rerank: {settings.rerank.backend}",
    ]
    return "\n".join(
        [
            f"  store: {store.backend} ({where})",
            f"  jobs: {jobs.backend} ({runner})",
            "  " + ", ".join(models),
            f"  language: {settings.language}, timezone: {settings.timezone}",
        ]
    )


def _load_or_exit(path: Path | None) -> Settings:
    """Load the settings once (the file may be a pipe); on problems print each and exit 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem)
        count = len(exc.problems)
        typer.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _model(name: str | None) -> str:
    return f" ({name})" if name else ""


def _describe_source(path: Path | None) -> str:
    if path is not None:
        return str(path)
    from_env = env_config_path()
    return f"{from_env} (from MEMSCOPE_CONFIG)" if from_env else "built-in defaults (= configs/default.yaml)"


# -- background jobs: `memscope worker`, `memscope beat`, `memscope jobs status` ---------------------
from memscope.jobs.commands import register as _register_job_commands  # noqa: E402

_register_job_commands(app)


# -- benchmarks: `memscope bench retrieval|ingest|embed|longrun|soak|locomo|locomo-qa` (run from a source checkout) ---
bench_app = typer.Typer(help="Latency, throughput and LoCoMo benchmarks (from a memscope source checkout).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(bench_app, name="bench")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]


def _bench(module: str):  # type: ignore[no-untyped-def]
    """Import benchmarks.<module>; the benchmarks live in the source tree, not in the installed package."""
    import importlib
    import sys

    try:
        return importlib.import_module(f"benchmarks.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", f"benchmarks.{module}"):
            raise
        checkout = Path.cwd()
        if (checkout / "benchmarks" / f"{module}.py").exists():
            sys.path.insert(0, str(checkout))
            return importlib.import_module(f"benchmarks.{module}")
        typer.echo("`memscope bench` needs the benchmarks/ folder: run it from a memscope source checkout", err=True)
        raise typer.Exit(EXIT_INVALID) from None


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
        help="local: each query embedded by the packaged MiniLM (timed); precomputed: no model.")] = "local",
    locomo: Annotated[Path | None, typer.Option(
        help="LoCoMo data folder: add rows at LoCoMo size (real turns, real questions, local MiniLM).")] = None,
    locomo_conversations: Annotated[int, typer.Option(help="Conversations for the --locomo rows.")] = 1,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of p50/p95 against store size here.")] = None,
    json_out: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Time the real retrieve_memory operation on fresh stores (synthetic memories, precomputed vectors)."""
    bench = _bench("retrieval")
    show = not (no_progress or json_out)
    results = [
        bench.run_retrieval_bench(n, users, queries, top_k, show_progress=show, store_kind=kind, es_url=es_url,
                                  embedder=embedder)
        for kind in (store or ["sqlite"])
        for n in memories
    ]  # fmt: skip
    if locomo is not None:
        results += bench.run_locomo_latency(locomo, locomo_conversations, top_k, show_progress=show)
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
        list[str] | None, typer.Option(help="numpy (built in) or sentence-transformers; repeatable.")
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
    settings = settings_to_dict(_load_or_exit(config), mask_secrets=False)
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
    settings = _load_or_exit(config)
    try:
        summary = bench.run_locomo_qa(data, settings, k, limit_questions, show_progress=not (no_progress or json_out))
    except NoModelConfigured as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    bench.report(summary, json_out)


def main() -> None:
    """Entry point of the `memscope` console script."""
    app(prog_name="memscope")


if __name__ == "__main__":
    main()

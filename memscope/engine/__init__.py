"""The engine: workers, their registry, operations loaded from YAML, and the runner."""

from memscope.engine.catalog import OperationCatalog, builtin_operation_files
from memscope.engine.operation import OperationSpec, ParallelGroup, Step, load_operation, parse_operation
from memscope.engine.registry import get_worker, registered_workers, worker
from memscope.engine.report import RunReport, StepReport
from memscope.engine.runner import OperationRunner, RunResult
from memscope.engine.worker import Context, Resources, Worker, WorkerParams

__all__ = [
    "Context",
    "OperationCatalog",
    "OperationRunner",
    "OperationSpec",
    "ParallelGroup",
    "Resources",
    "RunReport",
    "RunResult",
    "Step",
    "StepReport",
    "Worker",
    "WorkerParams",
    "builtin_operation_files",
    "get_worker",
    "load_operation",
    "parse_operation",
    "registered_workers",
    "worker",
]

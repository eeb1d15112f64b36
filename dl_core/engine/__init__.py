"""The engine: a training job (job.py) runs a trainer (trainers.py) under its controls and stop
rules; an executor gives it turns on a backend's lanes (executors.py, backends.py), in this
process or in workers it travels to and from (travel.py, workerproc.py, ray_backend.py); runs
outlive their page (runs.py; on disk runstore.py over storefiles.py), each session's within its
memory budget (footprint.py). It knows no lab and no UI."""
from .backends import RemoteBackend, ThreadBackend, WorkerLost
from .executors import Executor
from .job import TrainingJob
from .parts import TrainConfig
from .records import Event, History
from .runs import RUNS, Run, RunRegistry
from .runstore import RunStore
from .server import executor, make_backend, shutdown
from .trainers import SupervisedTrainer

__all__ = ["RUNS", "Event", "Executor", "History", "RemoteBackend", "Run", "RunRegistry", "RunStore",
           "SupervisedTrainer", "ThreadBackend", "TrainConfig", "TrainingJob", "WorkerLost", "executor",
           "make_backend", "shutdown"]

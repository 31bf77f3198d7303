"""Processes and threads: the cores this process may use, worker pools that keep to their share.
"""
from __future__ import annotations

import contextlib
import os


def _exit_with_parent(parent: int) -> None:
    """Pool-worker initializer: a daemon thread ends this process as soon as ``parent`` is gone,
    so that a killed ``zoa`` command leaves no worker behind (holding its output pipes)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="zoa-parent-watch").start()


#: The FFTs' thread count, read at every transform (:func:`zoa_lib.universe.fourier.fft_workers`).
FFT_WORKERS_ENV = "ZOA_FFT_WORKERS"


#: Environment variables that size a process's thread pools, read when each library loads
#: (:data:`FFT_WORKERS_ENV` at every transform).
THREAD_ENV = (FFT_WORKERS_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def pool_threads(workers: int) -> int:
    """Threads each of ``workers`` pool processes gets (:func:`process_pool`): an equal share
    of :func:`available_cores`, at least one."""
    return max(1, available_cores() // max(1, int(workers)))


def _limit_loaded_libraries(threads: int):
    """Limit the BLAS and OpenMP libraries loaded in this process to ``threads`` threads
    (threadpoolctl; numpy and scipy each bring their own OpenBLAS, both loaded first).
    Returns the limiter, whose ``restore_original_limits()`` undoes it."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(int(threads))


@contextlib.contextmanager
def thread_share(threads: int):
    """Run the block as a worker of :func:`process_pool` runs: at most ``threads`` threads for
    the FFTs (:data:`FFT_WORKERS_ENV`) and the BLAS and OpenMP libraries loaded; restored
    afterwards. The benchmarks time the pools' units this way."""
    old = os.environ.get(FFT_WORKERS_ENV)
    os.environ[FFT_WORKERS_ENV] = str(int(threads))
    limiter = _limit_loaded_libraries(threads)
    try:
        yield
    finally:
        limiter.restore_original_limits()
        if old is None:
            os.environ.pop(FFT_WORKERS_ENV, None)
        else:
            os.environ[FFT_WORKERS_ENV] = old


def _pool_worker(parent: int, threads: int) -> None:
    """Pool-worker initializer: end with ``parent`` (:func:`_exit_with_parent`) and keep to
    ``threads`` threads in every pool: the FFTs, OpenMP and the BLAS libraries already loaded
    (threadpoolctl; numpy and scipy each bring their own OpenBLAS) and those loaded later
    (:data:`THREAD_ENV`). Without it each of two workers on two cores ran two BLAS threads
    that spin while they wait: the Wiener filters took three times their CPU time."""
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    _limit_loaded_libraries(threads)
    _exit_with_parent(parent)


def process_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes (spawn, not fork: the caller
    may have TensorFlow's threads running) that end when this process ends, killed or not.
    Each worker gets an equal share of the cores for its threads (FFT, BLAS, OpenMP; at
    least one): ``workers`` processes never run more threads than there are cores."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = pool_threads(workers)
    return ProcessPoolExecutor(int(workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_pool_worker, initargs=(os.getpid(), threads))

from benchmarks import _env

_env.one_thread()

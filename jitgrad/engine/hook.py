"""The one switch between eager execution and tracing for compiled replay (jitgrad/compiler):
while a step is being traced, ``tracer`` is its Trace and the recording functions report every op,
backward and optimizer call to it. None otherwise, which is all the eager path pays."""
tracer = None

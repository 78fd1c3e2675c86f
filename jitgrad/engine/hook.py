"""The one switch between eager execution and tracing for compiled replay (jitgrad/compiler):
while a step is being traced, ``tracer`` is its Trace and the recording functions report every op,
backward and optimizer call to it. None otherwise, which is all the eager path pays."""
tracer = None
# how many times a module's parameters, buffers, submodules, hooks or attributes were assigned
# (any module's), or a tensor hook registered, or a hook removed: a compiled step checks the
# modules and leaves it traced again only after a change (compiler/__init__.py, _Compiled.holds)
module_changes = 0
# moves whenever a .grad may have been reached or changed: read or assigned (Tensor.grad), an
# in-place write anywhere (Tape.note_modified), a backward's accumulation, zero_grad, a replay
# handing out .grads. A compiled replay whose leaves' .grads it handed out last call, with this
# unmoved since, knows each is still that .grad, unreached and unchanged (Program._run_fresh)
grad_epoch = 0

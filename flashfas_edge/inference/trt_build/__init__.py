"""TensorRT engine build tooling (``flashfas-edge engines``, ``engines/build_engines.sh``).

Run by a technician on the device, never by the daemon: engine_plan.py (what to build, the same
shapes build_engines.sh uses) · engines.py (build with trtexec or the builder API, record the
engine manifest, FP16 parity against ONNX Runtime) · cli.py (``engines build|verify|info|record``).
The runtime side — reading ``engine_manifest.json`` and refusing stale engines — stays in
``flashfas_edge/inference`` (engine_manifest.py); this package builds on it, never the reverse.
"""

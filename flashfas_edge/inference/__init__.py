"""Step 9 of a check (docs/ARCHITECTURE.md §1, §4): run a model bundle.

backend.py (the Backend interface) · bundle.py (manifest validation) · forward.py (module order)
· mixing.py (ATR-FAS §3.4 + sparse routing) · ort_backend.py · tensorrt_backend.py · factory.py
(``create_backend``) · engine_manifest.py (refuses stale TensorRT engines)
· gpu_environment.py · synthetic_bundle.py (random-weight bundles for tests). The TensorRT
build tooling (`engines` command) is the trt_build/ subpackage, which the daemon never imports.
"""

"""The sections of `scripts/gpu-check` (docs/gpu-check.md), one module per kind of work.

- `common`: output helpers, the small config of sections 4 and 5, shard validation, FashionMNIST files;
- `info`: 1. software, devices, driver and ptxas; 2. the matmul precision in effect;
- `costs`: 3. calibration of the paper shapes; 6. peak memory against the estimate; 7. projected device-hours;
- `runs`: 4. one task through the real task path, twice, with the compilation cache; 5. device/CPU parity.

Each section prints its lines and returns a JSON-ready dict for the script's final line. This folder is not an
installed package (scripts/ is put on sys.path by the script), so it may import every stage: contracts, grids,
launch and pc. Nothing here has run on a GPU yet (no GPU has been lent to this project); the CPU path
(`--allow-cpu --quick`) is tested by tests/unit/test_gpu_check.py.
"""

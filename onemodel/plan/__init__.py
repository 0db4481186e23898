"""The scale planner behind onemodel-plan: pure calculators (no gin, no TensorFlow except
rundir.py reading a run directory) from a workload, a machine and a chip count to time to
target, with the published records it is checked against (records.csv)."""

"""absl entry points: the only place that reads FLAGS."""

import os

# TF prints several CUDA/oneDNN lines on start whatever this says; it still hides the
# INFO chatter. Set before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

"""absl entry points: the only place that reads FLAGS."""

import os

# Hides TensorFlow's INFO chatter; its native start-up lines (CUDA/oneDNN notices) ignore
# it and are filtered by native_stderr.py. Set before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

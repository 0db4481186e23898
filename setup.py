"""onemodel: one shared Transformer backbone for image, speech and text problems."""

from setuptools import setup

# Versions that install together on Python 3.11 (see ../shared/STACK.md).
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tensorflow-text==2.21.1",
    "tensorflow-datasets==4.9.10",
    "importlib_resources",  # tfds needs it but does not declare it
    "tensorboard==2.21.0",  # tf.summary raises without it on TF 2.21
    "keras==3.15.1",
    "gin-config==0.5.0",
    "absl-py==2.5.1",
    "sentencepiece==0.2.3",
    "sacrebleu==2.6.0",
    "jiwer==4.0.0",
    "numpy",
]

setup(
    name="onemodel",
    version="0.1.0",
    description="One shared Transformer backbone, small modality adapters, many problems.",
    python_requires=">=3.11,<3.12",
    packages=["onemodel", "onemodel.adapters", "onemodel.cli", "onemodel.plan",
              "onemodel.sources", "problems"],
    package_data={"problems": ["checksums.tsv"], "onemodel.plan": ["records.csv"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # kubernetes: its models (generated from the Kubernetes OpenAPI schema) validate
        # the manifests of `onemodel-launch --k8s` in tests/test_k8s.py.
        "test": ["pytest==9.2.0", "pytest-timeout==2.4.0", "pytest-xdist==3.8.0",
                 "kubernetes==37.0.3"],
        # keras-hub: the peer of benchmarks/speed_vs_peer.py and useful_tokens.py only.
        "bench": ["matplotlib==3.11.2", "keras-hub==0.32.0"],
    },
    entry_points={
        "console_scripts": [
            "onemodel-train=onemodel.cli.train:run",
            "onemodel-eval=onemodel.cli.eval:run",
            "onemodel-prepare=onemodel.cli.prepare:run",
            "onemodel-problems=onemodel.cli.problems:run",
            "onemodel-decode=onemodel.cli.decode:run",
            "onemodel-export=onemodel.cli.export:run",
            "onemodel-predict=onemodel.cli.predict:run",
            "onemodel-average=onemodel.cli.average:run",
            "onemodel-launch=onemodel.cli.launch:run",
            "onemodel-plan=onemodel.cli.plan:run",
        ],
        # Built-in problems are plugins like any other.
        "onemodel.problems": [
            "mnist=problems.mnist",
            "fsdd=problems.fsdd",
            "multi30k_en_de=problems.multi30k",
            "tinyshakespeare=problems.tinyshakespeare",
            "sst2=problems.sst2",
            "catalog=problems.catalog",
            "mixtures=problems.mixtures",
        ],
    },
)

#!/usr/bin/env bash
# Wheels for a GPU machine that has Python 3.12, PyTorch with CUDA, numpy, scipy, matplotlib, pytest, pytest-xdist,
# hypothesis and tqdm, but nothing can be installed there from the network. The notebooks also need a Jupyter kernel
# and nbval (and chapter 5 needs gensim, whose test data hold the corpus and word vectors). This script downloads
# those wheels here, into .whl/ (git-ignored, ~45 MB); benchmarks/gpu_check.sh installs them there with
# `pip install --no-index --target`, so the machine's own torch stays.
#
#   bash benchmarks/gpu_wheels.sh            # from the repository root, on a machine that reaches PyPI
#
# PYVER (default 3.12) is the GPU machine's Python. Only pure-Python or manylinux x86-64 wheels are taken.
set -euo pipefail
PYVER=${PYVER:-3.12}
DEST=${DEST:-.whl}
mkdir -p "$DEST"
# the notebook runner and its kernel (versions as requirements.txt allows), and everything they import that such an
# image does not hold; gensim for chapter 5
PKGS=(
  nbval==0.11.0 nbclient nbformat "ipykernel>=7.4" jupyter_client jupyter_core "ipywidgets>=8,<9"
  widgetsnbextension jupyterlab_widgets comm traitlets tornado pyzmq ipython ipython_pygments_lexers jedi parso
  prompt_toolkit wcwidth matplotlib-inline debugpy nest-asyncio stack_data executing asttokens pure_eval decorator
  pexpect ptyprocess fastjsonschema jsonschema jsonschema-specifications referencing rpds-py platformdirs
  gensim==4.4.0 smart_open
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${PKGS[@]}"
ls "$DEST" | wc -l | xargs echo "wheels in $DEST:"
du -sh "$DEST"

#!/usr/bin/env bash
# Distributed training with torchrun on one or more nodes:
#   tools/dist_train.sh CONFIG NPROC [tools/train.py options]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# PORT (29500). Without CUDA the processes train on the CPU with gloo.
set -e
if [ $# -lt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: $0 CONFIG NPROC_PER_NODE [tools/train.py options]" >&2
    echo "environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500)" >&2
    case "${1:-}" in -h|--help) exit 0 ;; esac
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$REPO_ROOT/.venv/bin/python" ]; then
    PYTHON="$REPO_ROOT/.venv/bin/python"
else
    PYTHON=python
fi

PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$REPO_ROOT/tools/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"

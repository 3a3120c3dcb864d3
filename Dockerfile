# scorecast gRPC server. CPU by default; the CUDA variant swaps in onnxruntime-gpu:
#   docker build -t scorecast .
#   docker build -t scorecast:cuda --build-arg DEVICE=cuda \
#       --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .
#   docker run -p 50051:50051 -v $PWD/models:/models scorecast
# The image listens on 0.0.0.0, where `serve` refuses to run in the clear unless told: the
# default CMD below says --insecure (for a trusted network or a TLS-terminating sidecar). To
# secure it, give arguments that replace the CMD, e.g. tokens and TLS:
#   docker run -p 50051:50051 -v $PWD/models:/models -v $PWD/secrets:/secrets:ro scorecast \
#       --tokens-file /secrets/tokens.json --tls-cert /secrets/server.pem --tls-key /secrets/server.key
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG DEVICE=cpu

# The CUDA base images carry no Python of their own; the slim image already has it.
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*; \
    fi && python3 -m venv /opt/scorecast
ENV PATH=/opt/scorecast/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY scorecast scorecast
COPY kernels kernels
COPY server server
COPY training training
COPY proto proto
RUN pip install --no-cache-dir . \
 && if [ "$DEVICE" = "cuda" ]; then pip uninstall -y onnxruntime && pip install --no-cache-dir onnxruntime-gpu; fi \
 && rm -rf /src

# numba's on-disk cache needs a writable place when the package folder is not.
ENV NUMBA_CACHE_DIR=/tmp/numba-cache \
    SCORECAST_MODELS=/models \
    SCORECAST_HOST=0.0.0.0 \
    SCORECAST_PORT=50051 \
    SCORECAST_DEVICE=${DEVICE}
WORKDIR /
EXPOSE 50051
USER nobody
# exec form: SIGTERM reaches the server, which drains in-flight streams before exiting
ENTRYPOINT ["scorecast", "serve", "--models", "/models"]
# Serving in the clear is explicit; any arguments given to `docker run` replace this one.
CMD ["--insecure"]

"""The scoring service: gRPC (scorecast.v1 and the Open Inference Protocol), the model
repository, and whole-base rescoring.

It imports kernels and the bottom layer (``scorecast/*.py``), never training; only the entry
points (``scorecast.cli``) and tests import it (``tests/test_packaging.py`` enforces both).
Its modules, by job:

Answering a call
- ``app``         builds and runs the gRPC server: services, health, reflection, metrics
- ``servicer``    the scorecast.v1 servicer: decode, call the pipeline, encode
- ``oip``         the Open Inference Protocol (KServe V2) servicer on the same port
- ``tensors``     OIP tensors <-> Arrow tables
- ``codec``       Arrow IPC bytes <-> Arrow tables, errors naming the field
- ``pipeline``    one chunk of contacts' tables -> one Arrow batch of scores (no gRPC)
- ``batching``    small calls that ask the same scored together in one pipeline pass, answered apart
- ``topn``        the N contacts with the highest value of one column among those matching a filter

Models
- ``repository``  one account's folder of ``<score>/<version>.onnx`` files, loaded into sessions;
                  which folders of a repository are accounts
- ``accounts``    the accounts a server knows, loaded on demand within the memory budget, held
                  by their calls, capped per account
- ``eviction``    which loaded account leaves first: the least called in real time (scans count no call)
- ``heap``        the heap an account's load adds (glibc ``mallinfo2``), RSS, returning free pages
- ``runtime``     one served model: an ONNX Runtime session (CPU or CUDA) and its metadata
- ``tree_gemm``   tree ensembles rewritten to GEMM form for the CUDA provider

Guarding the service
- ``admission``   how many calls and streams run at once, how many wait and how long, how long a stream may idle
- ``limits``      what one chunk may decode to, checked before any buffer is decompressed
- ``security``    TLS credentials and bearer-token authentication with roles
- ``errors``      the errors the server raises, each with its gRPC status

Running and watching it
- ``config``      the one configuration path: defaults, ``SCORECAST_*`` variables, flags
- ``processes``   ``scorecast serve``: one server, or N processes on one port
- ``logs``        structured JSON logs carrying each call's request id
- ``metrics``     Prometheus metrics: requests, rows, errors, latency, model loads, stage time
- ``usage``       per-account calls, contacts and errors in a periodically rewritten file

Whole-base rescoring
- ``rescore``     a Parquet base in, one Parquet file of scores out, in process
- ``rescore_ray`` the same pipeline spread over a Ray cluster
- ``fleet``       ``scorecast fleet rescore``: one account's base rescored with what it serves
- ``lanes``       chunks scored side by side, answered in order (rescore and the Score stream)
"""

"""``qa ingest --ray``: files parsed, chunked and embedded by Ray Data; written here.

The build stays the one in ``qa.build``; Ray only replaces where the work runs:

    driver (qa ingest)                         Ray workers
    discover files, read their bytes  ─────▶  parse (``parse_source``), one task per file
    plan: kept, changed, removed      ◀─────  documents, in file order
    documents to embed                ─────▶  chunk (``document_units``), tasks
                                              embed: an actor pool, the model loaded once per
                                              actor, one compute thread each
    write, journal, publish (``_Writer``) ◀──  units with their vectors, in document order

Ray Data keeps the order (``preserve_order``), so the driver writes exactly what a
single-process build writes, through the same journal: a build that fails resumes at the next
whole document, and only a finished generation is published. Ray restarts an actor that dies
and retries its batch; a failure Ray gives up on is a ``DistributedError`` and leaves the
served generation as it was.

Ray is imported only here, and only when ``--ray`` is used. Workers of a remote cluster need
this package and the model installed, and see the driver's files only as the bytes it sends.
"""

from __future__ import annotations

import json
import logging
import socket
import warnings
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from qa.build import Unit, document_units, reloadable, worker_encode, worker_start
from qa.chunk import ChunkerSettings
from qa.embed import Embedder
from qa.errors import ConfigError, DependencyMissingError, DistributedError, DocumentParseError
from qa.index import document_row, documents_from_rows
from qa.ingest import Source, parse_source, read_source
from qa.types import Chunk, Document

LOCAL = "local"  # a Ray instance of this process's own, started and stopped by the ingest
_MAX_BLOCKS = 1_000  # one block per file or document, up to this many
_CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster address before giving up


class RayIngest:
    """A connected Ray cluster that parses (``read``, a ``qa.ingest.ReadFiles``) and chunks and
    embeds (``embed``, a ``qa.build.EmbedUnits``) for ``qa.service.ingest``."""

    def __init__(self, ray: Any, workers: int) -> None:
        self._ray = ray
        self.workers = workers  # embedding actors

    def read(
        self, paths: Iterable[Path], root: Path
    ) -> Iterator[tuple[Path, Document | DocumentParseError]]:
        listed = list(paths)
        sources: list[Source | DocumentParseError] = []
        for path in listed:  # read here: a remote worker does not see this machine's files
            try:
                sources.append(read_source(path, root))
            except DocumentParseError as exc:
                sources.append(exc)
        items = [
            {"position": i, **asdict(s)} for i, s in enumerate(sources) if isinstance(s, Source)
        ]
        parsed = self._rows(self._dataset(items).map(_parse_row)) if items else iter(())
        for path, source in zip(listed, sources, strict=True):
            if isinstance(source, DocumentParseError):
                yield path, source
                continue
            row = next(parsed)
            if row["error_reason"]:
                yield path, DocumentParseError(row["error_path"], row["error_reason"])
            else:
                yield path, documents_from_rows([json.loads(row["document"])])[0]

    def embed(
        self,
        documents: Sequence[Document],
        chunker: ChunkerSettings,
        embedder: Embedder,
        workers: int,
    ) -> Generator[Unit, None, None]:
        if not documents:
            return
        if not reloadable(embedder):
            raise ConfigError(
                f"Ray workers load the model by its id; {embedder.model_id!r} is not one of "
                "qa.embed's backends"
            )
        from ray.data import ActorPoolStrategy

        items = [
            {"position": i, "document": json.dumps(document_row(d), ensure_ascii=False)}
            for i, d in enumerate(documents)
        ]
        units = self._dataset(items).flat_map(
            _chunk_row,
            fn_kwargs={"chunker": chunker},
            num_cpus=0,  # light; the embedding actors hold the CPUs
            concurrency=self.workers,
        )
        embedded = units.map_batches(
            _EmbedUnits,
            fn_constructor_kwargs={"model_id": embedder.model_id},
            batch_size=1,  # one unit: the texts one encode call embeds in a single-process build
            compute=ActorPoolStrategy(size=self.workers),
            num_cpus=1,
        )
        for row in self._rows(embedded):
            unit = _unit_from_json(documents[row["position"]], row["unit"])
            if not unit.texts:
                yield unit
                continue
            vectors = np.frombuffer(row["vectors"], dtype=np.float32)
            yield unit.embedded(vectors.reshape(len(unit.texts), -1))

    def _dataset(self, items: list[dict[str, Any]]) -> Any:
        data = self._ray.data
        return data.from_items(items, override_num_blocks=min(len(items), _MAX_BLOCKS))

    def _rows(self, dataset: Any) -> Iterator[dict[str, Any]]:
        """The dataset's rows in order; Ray's failures as one ``DistributedError``."""
        try:
            with warnings.catch_warnings():  # Ray Data's hints on concurrency and blocks
                warnings.simplefilter("ignore")
                yield from dataset.iter_rows()
        except self._ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedError(f"Ray workers failed: {first}") from exc


@contextmanager
def ray_ingest(address: str | None, *, workers: int) -> Iterator[RayIngest]:
    """Ray for one ingest: ``None`` or ``"local"`` starts a Ray instance of ``workers`` CPUs
    for this process (stopped afterwards); ``"auto"`` joins the cluster on this machine; an
    address (``host:6379``, ``ray://host:10001``) joins that cluster. A Ray already
    initialised in this process (a test's) is used as it is and left running."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        _connect(ray, address or LOCAL, workers)
    try:
        _quiet(ray)
        if (address or LOCAL) == LOCAL:
            actors = workers
        else:
            actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
        yield RayIngest(ray, actors)
    finally:
        if started:
            ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("ray", "pyarrow", "pandas"):
            raise
        raise DependencyMissingError(
            "qa ingest --ray needs Ray Data: pip install 'ray[data]' (or: pip install -e '.[ray]')"
        ) from None
    return ray


def _connect(ray: Any, address: str, workers: int) -> None:
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,  # workers' output stays in Ray's log files
        "logging_level": logging.ERROR,
    }
    if address == LOCAL:
        ray.init(address=LOCAL, num_cpus=workers, **options)
        return
    if address != "auto":
        _reachable(address)
    try:
        with warnings.catch_warnings():  # Ray Client warns, then raises: the error says it
            warnings.simplefilter("ignore")
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DistributedError(
            f"cannot connect to the Ray cluster at {address}: {reason}"
        ) from None


def _reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minute of retries, when nothing listens there."""
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"--ray address {address!r}: use auto, host:port or ray://host:port, or no address "
            "for a local Ray (files and folders go before --ray)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DistributedError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _quiet(ray: Any) -> None:
    """No Ray Data progress bars or per-dataset log lines: the CLI draws its own progress."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in document order
    context.enable_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --- run on the workers ----------------------------------------------------------------------


# Rows cross between the driver and the workers as JSON text, bytes and numbers (Arrow columns
# Ray Data moves as they are): this code unpickles nothing.


def _parse_row(row: dict[str, Any]) -> dict[str, Any]:
    source = Source(
        path=row["path"], doc_id=row["doc_id"], source_path=row["source_path"], raw=row["raw"]
    )
    try:
        document = json.dumps(document_row(parse_source(source)), ensure_ascii=False)
        return {
            "position": row["position"],
            "document": document,
            "error_path": "",
            "error_reason": "",
        }
    except DocumentParseError as exc:
        return {
            "position": row["position"],
            "document": "",
            "error_path": exc.path,
            "error_reason": exc.reason,
        }


def _unit_json(unit: Unit) -> str:
    return json.dumps(
        {
            "chunks": [asdict(chunk) for chunk in unit.chunks],
            "ranges": unit.ranges,
            "texts": unit.texts,
            "last": unit.last,
            "chars": unit.chars,
        },
        ensure_ascii=False,
    )


def _unit_from_json(document: Document, text: str) -> Unit:
    data = json.loads(text)
    chunks = [Chunk(**{**c, "footnotes": tuple(c["footnotes"])}) for c in data["chunks"]]
    ranges = [(int(a), int(b)) for a, b in data["ranges"]]
    return Unit(document, chunks, ranges, list(data["texts"]), bool(data["last"]), data["chars"])


def _chunk_row(row: dict[str, Any], chunker: ChunkerSettings) -> list[dict[str, Any]]:
    document = documents_from_rows([json.loads(row["document"])])[0]
    return [
        {"position": row["position"], "unit": _unit_json(unit)}
        for unit in document_units(document, chunker)
    ]


class _EmbedUnits:
    """An embedding actor: the model loaded once, one compute thread (as ``qa.build``'s worker
    processes); each unit's texts embedded in one call, as a single-process build does."""

    def __init__(self, model_id: str) -> None:
        worker_start(model_id)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        vectors = []
        for text in batch["unit"]:
            texts = json.loads(text)["texts"]
            encoded = worker_encode(texts) if texts else np.zeros((0, 0), np.float32)
            vectors.append(np.ascontiguousarray(encoded, dtype=np.float32).tobytes())
        return {
            "position": batch["position"],
            "unit": batch["unit"],
            "vectors": np.array(vectors, dtype=object),
        }

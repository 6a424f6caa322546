"""Writing records that kafka-python's producer refuses but Kafka accepts.

Java's and librdkafka's producers may write a header with a null value, or a record with
neither key nor value; kafka-python's `send` refuses both. Tests that play such a producer
build the record batch with kafka-python's own record builder (which encodes nulls as
Kafka does) and send one Produce request (v3, acks=all) over a plain socket to a single
broker, such as the Tansu the tests run.
"""

from __future__ import annotations

import socket
import struct
import time

from kafka.record.memory_records import MemoryRecordsBuilder

_PRODUCE: int = 0
_VERSION: int = 3


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def produce_raw(bootstrap: str, topic: str, partition: int,
                records: list[tuple[bytes | None, list[tuple[str, bytes | None]]]]) -> None:
    """Append `records` (value, headers) to a partition; AssertionError if the broker
    refuses them."""
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    now = int(time.time() * 1000)
    for value, headers in records:
        builder.append(now, None, value, headers)
    builder.close()
    batch = bytes(builder.buffer())
    body = (struct.pack(">h", -1)  # no transactional id
            + struct.pack(">hi", -1, 10_000)  # acks=all, timeout
            + struct.pack(">i", 1) + _string(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(batch)) + batch)
    header = struct.pack(">hhi", _PRODUCE, _VERSION, 1) + _string("troupe-tests-raw")
    request = header + body
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read(connection, 4))[0]
        answer = _read(connection, size)
    # correlation id, topics[1]: name, partitions[1]: index, error code, ...
    offset = 4 + 4
    name_length = struct.unpack_from(">h", answer, offset)[0]
    offset += 2 + name_length + 4 + 4
    error_code = struct.unpack_from(">h", answer, offset)[0]
    assert error_code == 0, f"the broker refused the records: Kafka error code {error_code}"


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data

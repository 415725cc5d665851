"""Writes tests/testdata/tfevents/golden.tfevents with the real `tensorboard` package.

The file holds Event protos built with TensorBoard's own protobuf classes and framed by its
own RecordWriter (length, masked CRC32C, data, masked CRC32C); tests/report/tfevents_test.ts
checks that our reader reads it and that our writer produces the same bytes for the same
events. Run outside CI after `pip install tensorboard`:

    python3 tests/tools/tb_golden.py
"""
import io
import os

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

PNG = bytes([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3])


def events():
    yield event_pb2.Event(wall_time=1700000000.5, file_version="brain.Event:2")
    yield event_pb2.Event(
        wall_time=1700000001.25,
        step=1,
        summary=summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag="train/loss", simple_value=2.5),
                summary_pb2.Summary.Value(tag="train/lr", simple_value=0.001),
            ]
        ),
    )
    yield event_pb2.Event(
        wall_time=1700000002.0,
        step=300,
        summary=summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(
                    tag="eval/selection/00000513",
                    image=summary_pb2.Summary.Image(
                        height=2, width=3, colorspace=3, encoded_image_string=PNG
                    ),
                )
            ]
        ),
    )


def main():
    buf = io.BytesIO()
    w = RecordWriter(buf)
    for e in events():
        w.write(e.SerializeToString())
    out = os.path.join(os.path.dirname(__file__), "..", "testdata", "tfevents", "golden.tfevents")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(buf.getvalue())
    print(f"wrote {out}: {len(buf.getvalue())} bytes")


if __name__ == "__main__":
    main()

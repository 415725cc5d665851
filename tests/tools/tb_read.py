"""Reads ps3's TensorBoard event files with the real `tensorboard` package (outside CI).

Cross-check of src/report/tfevents.ts: TensorBoard's own record reader (which verifies the
masked CRC32C of every length and payload) and its EventAccumulator (which turns
`simple_value` scalars and PNG images into its scalar and image series) must read every
record we write.

    pip install tensorboard
    python3 tests/tools/tb_read.py runs/ps3-tiny/tensorboard

Prints every tag with its number of points, first and last (step, value); images with their
steps and sizes.
"""
import glob
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader


def main(logdir: str) -> None:
    files = sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))
    if not files:
        sys.exit(f"no event files in {logdir}")
    for f in files:
        # Raw records: the loader raises on a CRC mismatch or a truncated record.
        n = sum(1 for _ in event_file_loader.RawEventFileLoader(f).Load())
        print(f"{os.path.basename(f)}: {n} records, CRCs verified by tensorboard's reader")
    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    print(f"scalars: {len(tags['scalars'])} tags")
    for tag in sorted(tags["scalars"]):
        s = acc.Scalars(tag)
        print(
            f"  {tag:40s} {len(s):4d} points  first ({s[0].step}, {s[0].value:.6g})"
            f"  last ({s[-1].step}, {s[-1].value:.6g})"
        )
    print(f"images: {len(tags['images'])} tags")
    for tag in sorted(tags["images"]):
        im = acc.Images(tag)
        png = im[-1].encoded_image_string[:4] == b"\x89PNG"
        print(
            f"  {tag:40s} steps {[i.step for i in im]}  {im[-1].width}x{im[-1].height}"
            f"  png {png}"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/ps3-tiny/tensorboard")

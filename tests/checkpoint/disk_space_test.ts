import { match, ok, rejects, strictEqual } from "node:assert";
import { join } from "node:path";
import {
  checkFreeSpace,
  diskFullError,
  freeBytes,
  isDiskFull,
} from "../../src/checkpoint/disk_space.ts";
import { writeFileAtomic } from "../../src/checkpoint/atomic.ts";

Deno.test("a write that fills the disk is recognised and reported with the file, needed and free bytes", async () => {
  const mnt = await Deno.makeTempDir({ prefix: "ps3-tmpfs-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
    stdout: "null",
    stderr: "piped",
  }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  if (!mount.success) {
    console.log(
      `skipped: cannot mount a small tmpfs here (${new TextDecoder().decode(mount.stderr).trim()})`,
    );
    await Deno.remove(mnt);
    return;
  }
  try {
    const free = await freeBytes(mnt);
    strictEqual(free, 1 << 20);
    await rejects(
      checkFreeSpace(mnt, 2 << 20, `checkpoint "x"`),
      /needs about 2\.0 MiB \(2097152 bytes\) and the disk of ".*" has 1\.0 MiB \(1048576 bytes\) free/,
    );
    await checkFreeSpace(mnt, 1000, "small"); // fits: no error
    const file = join(mnt, "model.safetensors");
    let caught: unknown = null;
    try {
      await writeFileAtomic(file, new Uint8Array(2 << 20));
    } catch (e) {
      caught = e;
    }
    ok(isDiskFull(caught), `not recognised as disk full: ${caught}`);
    const e = await diskFullError(caught, `checkpoint "x"`, file, mnt, 2 << 20);
    match(
      e.message,
      /the disk is full while writing ".*model\.safetensors" \(the save needs about 2\.0 MiB \(2097152 bytes\); 1\.0 MiB \(1048576 bytes\) free/,
    );
    ok(!isDiskFull(new Error("Permission denied (os error 13)")));
  } finally {
    await new Deno.Command("umount", { args: [mnt] }).output();
    await Deno.remove(mnt, { recursive: true });
  }
});

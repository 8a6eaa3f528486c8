// A plain Node worker reporting its progress to progressd with the
// coalescing reporter of @progressd/client/node: it creates a job (or takes
// the one in PROGRESSD_JOB_ID), resizes N "images" reporting after every
// one (the reporter sends about ten requests a second, whatever the loop's
// pace), logs a line every tenth, uploads, and reports succeeded with a
// result. A job canceled meanwhile (progressd cancel, the dashboard) makes
// the next report() throw JobCanceledError: the worker stops there.
//
//   PROGRESSD_SERVER=http://127.0.0.1:8000 [PROGRESSD_TOKEN=…] node worker.mjs [N] [ms per image]
//
// Prints the job's id first. Exit status: 0 done, 3 canceled, 1 failed.
import { Client, JobCanceledError } from "@progressd/client/node";

const count = Number(process.argv[2] ?? 200);
const msPerImage = Number(process.argv[3] ?? 10);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const client = new Client(); // PROGRESSD_SERVER and PROGRESSD_TOKEN from the environment
const job = process.env.PROGRESSD_JOB_ID
  ? await client.attach(process.env.PROGRESSD_JOB_ID)
  : await client.createJob({
      project: "node-worker",
      name: `Resize ${count} images`,
      stages: [{ name: "resize", weight: 9 }, { name: "upload" }],
    });
console.log(job.id);

try {
  job.log(`resizing ${count} images`);
  for (let i = 1; i <= count; i++) {
    await sleep(msPerImage); // the work
    job.report({ stage: "resize", current: i, total: count, message: `image ${i} of ${count}` });
    if (i % Math.max(1, Math.floor(count / 10)) === 0) job.log(`resized ${i} of ${count}`);
  }
  job.report({ stage: "upload", progress: 0, message: "uploading" });
  await sleep(msPerImage * 5);
  job.report({ stage: "upload", progress: 1 });
  await job.succeed({ images: count });
} catch (err) {
  if (err instanceof JobCanceledError) {
    console.error(`job ${job.id} was canceled: stopping`);
    process.exitCode = 3;
  } else {
    console.error(err);
    await job.fail(err).catch(() => undefined);
    process.exitCode = 1;
  }
} finally {
  await client.close().catch((e) => console.error(`progressd: ${e.message}`));
}

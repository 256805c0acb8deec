/**
 * The harness of the training-kernel tests (`tests/kernels_*_train_test.ts`,
 * `tests/kernels_cross_entropy_test.ts`, `tests/kernels_adamw_test.ts`): one compiled
 * {@linkcode TrainKernels} per test process, a recorder run to completion, and the check
 * every kernel output passes (relative L2 error against the CPU reference, computed in f64,
 * below 1e-4). Written outputs start poisoned (NaN, `poisoned()`), so an element a kernel
 * fails to write fails the test.
 *
 * @module
 */
import { assertLess } from "@std/assert";
import { TrainKernels } from "../kernels/train.ts";
import type { Recorder } from "../kernels/encode.ts";
import type { GpuContext } from "../kernels/device.ts";
import { recorder, relL2, testGpu, upload } from "./webgpu_helpers.ts";

/** Relative L2 error every kernel output must stay below. */
export const TOL = 1e-4;
let kernels: TrainKernels | undefined;

/** The test device and its training kernels, or `null` without an adapter. */
export async function setup(): Promise<{ gpu: GpuContext; k: TrainKernels } | null> {
  const gpu = await testGpu();
  if (!gpu) return null;
  kernels ??= await TrainKernels.create(gpu);
  return { gpu, k: kernels };
}

/** Records `fn` into one submission and waits for the GPU to finish it. */
export async function run(gpu: GpuContext, fn: (rec: Recorder) => void): Promise<void> {
  const rec = recorder(gpu);
  rec.arena.reserve(1024);
  rec.begin();
  fn(rec);
  gpu.device.queue.submit([rec.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
}

/** `Float64Array` copy (the CPU reference runs in f64). */
export const f64 = (a: Float32Array): Float64Array => Float64Array.from(a);

/** A u32 buffer on the device holding `a`. */
export const u32 = (gpu: GpuContext, a: ArrayLike<number>): GPUBuffer =>
  upload(gpu, Uint32Array.from(a));

/** Asserts the relative L2 error of a kernel output against its reference is below `tol`. */
export function check(
  name: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol = TOL,
): void {
  const err = relL2(got, want);
  assertLess(err, tol, `${name}: relative L2 error ${err}`);
}

/**
 * The CPU trainer's linear maps on the machine's BLAS (`cblas_sgemm` of OpenBLAS through
 * Deno's FFI), for f32 training: the same three products as the reference's
 * `linearForward`, `linearBackwardInput` and `linearBackwardParams`
 * (`kernels/matmul/reference.ts`), summed in BLAS's order instead of one ascending sum per
 * output. On the tiny OPT fixtures a training step is three products with the LM head
 * (`[n, 128] x [50272, 128]^T` and its two gradients), which the TypeScript loops run at
 * 1.5-2.8 GFLOP/s and OpenBLAS at about 100 on two cores (`bench/README.md`, training).
 *
 * Loaded only when the run may (`--allow-ffi`, scoped to the library's path in the
 * `deno.json` tasks) and the library exists; {@linkcode blasLinearOps} returns `undefined`
 * otherwise and the trainer keeps the TypeScript loops. `SKIPDECODE_BLAS` names another
 * library (any with `cblas_sgemm`), `SKIPDECODE_BLAS=off` turns it off.
 *
 * @example
 * ```ts
 * import { blasLinearOps } from "./blas.ts";
 * const ops = blasLinearOps(); // undefined without --allow-ffi or OpenBLAS
 * console.log(ops ? ops.name : "TypeScript loops");
 * ```
 * @module
 */
import {
  linearBackwardInput,
  linearBackwardParams,
  linearForward,
} from "../kernels/matmul/reference.ts";
import type { FloatArray } from "./param_set.ts";

/**
 * The three products of a linear map `y[M, N] = x[M, K] · w[N, K]^T + b[N]` that training
 * needs; every backward *adds* into its outputs.
 */
export interface LinearOps {
  /** What runs them (`"typescript"`, or the BLAS library's path). */
  readonly name: string;
  /** `y[M, N] = x[M, K] · w[N, K]^T (+ b[N])`. */
  forward(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | undefined,
    m: number,
    k: number,
    n: number,
  ): FloatArray;
  /** `dx[M, K] += dy[M, N] · w[N, K]`. */
  backwardInput(
    dy: FloatArray,
    w: FloatArray,
    m: number,
    k: number,
    n: number,
    dx: FloatArray,
  ): void;
  /** `dw[N, K] += dy[M, N]^T · x[M, K]`, `db[N] += Σ_i dy[i, :]`. */
  backwardParams(
    dy: FloatArray,
    x: FloatArray,
    m: number,
    k: number,
    n: number,
    dw: FloatArray,
    db?: FloatArray,
  ): void;
}

/**
 * The reference's TypeScript loops (`kernels/matmul/reference.ts`): f32 and f64.
 *
 * @example
 * ```ts
 * import { TYPESCRIPT_LINEAR } from "./blas.ts";
 * TYPESCRIPT_LINEAR.forward(new Float64Array([1, 2]), new Float64Array([3, 4]), undefined, 1, 2, 1); // [11]
 * ```
 */
export const TYPESCRIPT_LINEAR: LinearOps = Object.freeze({
  name: "typescript",
  forward: linearForward,
  backwardInput: linearBackwardInput,
  backwardParams: linearBackwardParams,
});

/** Where Debian's and most distributions' OpenBLAS lives. */
export const DEFAULT_BLAS_PATH = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0";

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "buffer", // A
      "i32", // lda
      "buffer", // B
      "i32", // ldb
      "f32", // beta
      "buffer", // C
      "i32", // ldc
    ],
    result: "void",
  },
} as const;

type Sgemm = (
  order: number,
  ta: number,
  tb: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
) => void;

let loaded: LinearOps | null | undefined;

function envPath(): string | undefined {
  try {
    if (
      Deno.permissions.querySync({ name: "env", variable: "SKIPDECODE_BLAS" }).state !== "granted"
    ) {
      return undefined;
    }
    return Deno.env.get("SKIPDECODE_BLAS") || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The BLAS-backed linear ops (f32; f64 arrays fall back to the TypeScript loops), or
 * `undefined` when FFI is not allowed for the library, the library is missing, or
 * `SKIPDECODE_BLAS=off`. Loaded once per process.
 *
 * @returns the ops, or `undefined`
 * @example
 * ```ts
 * import { blasLinearOps } from "./blas.ts";
 * blasLinearOps()?.name; // "/usr/lib/x86_64-linux-gnu/libopenblas.so.0" with --allow-ffi
 * ```
 */
export function blasLinearOps(): LinearOps | undefined {
  if (loaded !== undefined) return loaded ?? undefined;
  loaded = null;
  const named = envPath();
  const path = named ?? DEFAULT_BLAS_PATH;
  if (path === "off") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi", path }).state !== "granted") return undefined;
  } catch {
    return undefined;
  }
  let sgemm: Sgemm;
  try {
    const lib = Deno.dlopen(path, SYMBOLS);
    sgemm = lib.symbols.cblas_sgemm as unknown as Sgemm;
  } catch (e) {
    if (named === undefined) return undefined; // no OpenBLAS here: the TypeScript loops
    throw new Error(
      `SKIPDECODE_BLAS=${path}: cannot load cblas_sgemm from it (${(e as Error).message}); ` +
        `set SKIPDECODE_BLAS=off to train with the TypeScript loops`,
    );
  }
  const f32 = (...a: (FloatArray | undefined)[]) =>
    a.every((x) => x === undefined || x instanceof Float32Array);
  // BLAS reads and writes through raw pointers, past a typed array's end as readily as inside
  // it (the TypeScript loops would drop such a write silently, BLAS corrupts the heap): every
  // operand's length is checked against the product's shape before the call.
  const fits = (
    op: string,
    shape: string,
    ...operands: (readonly [string, FloatArray, number])[]
  ) => {
    for (const [name, a, need] of operands) {
      if (a.length < need) {
        throw new RangeError(
          `BLAS ${op} (${shape}): ${name} holds ${a.length} values, the product needs ${need}`,
        );
      }
    }
  };
  loaded = Object.freeze({
    name: path,
    forward(
      x: FloatArray,
      w: FloatArray,
      b: FloatArray | undefined,
      m: number,
      k: number,
      n: number,
    ) {
      if (!f32(x, w, b) || m === 0) return linearForward(x, w, b, m, k, n);
      const shape = `M=${m}, K=${k}, N=${n}`;
      fits(
        "forward",
        shape,
        ["x", x, m * k],
        ["w", w, n * k],
        ...(b ? [["b", b, n]] as const : []),
      );
      const y = new Float32Array(m * n);
      if (b) { for (let i = 0; i < m; i++) y.set(b as Float32Array, i * n); }
      sgemm(
        ROW_MAJOR,
        NO_TRANS,
        TRANS,
        m,
        n,
        k,
        1,
        x as Float32Array,
        k,
        w as Float32Array,
        k,
        b ? 1 : 0,
        y,
        n,
      );
      return y;
    },
    backwardInput(dy: FloatArray, w: FloatArray, m: number, k: number, n: number, dx: FloatArray) {
      if (!f32(dy, w, dx)) return void linearBackwardInput(dy, w, m, k, n, dx);
      if (m === 0) return;
      fits("backwardInput", `M=${m}, K=${k}, N=${n}`, ["dy", dy, m * n], ["w", w, n * k], [
        "dx",
        dx,
        m * k,
      ]);
      sgemm(
        ROW_MAJOR,
        NO_TRANS,
        NO_TRANS,
        m,
        k,
        n,
        1,
        dy as Float32Array,
        n,
        w as Float32Array,
        k,
        1,
        dx as Float32Array,
        k,
      );
    },
    backwardParams(
      dy: FloatArray,
      x: FloatArray,
      m: number,
      k: number,
      n: number,
      dw: FloatArray,
      db?: FloatArray,
    ) {
      if (!f32(dy, x, dw, db)) return linearBackwardParams(dy, x, m, k, n, dw, db);
      if (m === 0) return;
      fits("backwardParams", `M=${m}, K=${k}, N=${n}`, ["dy", dy, m * n], ["x", x, m * k], [
        "dw",
        dw,
        n * k,
      ], ...(db ? [["db", db, n]] as const : []));
      sgemm(
        ROW_MAJOR,
        TRANS,
        NO_TRANS,
        n,
        k,
        m,
        1,
        dy as Float32Array,
        n,
        x as Float32Array,
        k,
        1,
        dw as Float32Array,
        k,
      );
      if (db) {
        for (let i = 0; i < m; i++) {
          const o = i * n;
          for (let j = 0; j < n; j++) db[j] += dy[o + j];
        }
      }
    },
  });
  return loaded;
}

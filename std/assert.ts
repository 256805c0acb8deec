/**
 * A small stand-in for `jsr:@std/assert` built on `node:assert/strict`, because the JSR
 * registry is unreachable here. Mapped as `@std/assert` in `deno.json`; switching to the
 * real package is one line there.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(1 + 1, 2);
 * ```
 * @module
 */
import assert from "node:assert/strict";

/** Error thrown by every assertion here. */
export class AssertionError extends Error {
  /** Makes an assertion error with a message. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function fail(msg: string | undefined, detail: string): never {
  throw new AssertionError(msg ? `${msg}: ${detail}` : detail);
}

/**
 * Asserts deep equality.
 *
 * @example
 * ```ts
 * assertEquals([1, 2], [1, 2]);
 * ```
 */
export function assertEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T {
  try {
    assert.deepStrictEqual(actual, expected);
  } catch (e) {
    fail(msg, (e as Error).message);
  }
}

/**
 * Asserts deep inequality.
 *
 * @example
 * ```ts
 * assertNotEquals(1, 2);
 * ```
 */
export function assertNotEquals(actual: unknown, expected: unknown, msg?: string): void {
  try {
    assert.notDeepStrictEqual(actual, expected);
  } catch (e) {
    fail(msg, (e as Error).message);
  }
}

/**
 * Asserts strict (`Object.is`) equality.
 *
 * @example
 * ```ts
 * assertStrictEquals("a", "a");
 * ```
 */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (!Object.is(actual, expected)) {
    fail(msg, `expected ${String(expected)}, got ${String(actual)}`);
  }
}

/**
 * Asserts that a value is truthy.
 *
 * @example
 * ```ts
 * assert(1 < 2);
 * ```
 */
export function assert_(expr: unknown, msg = "assertion failed"): asserts expr {
  if (!expr) throw new AssertionError(msg);
}
export { assert_ as assert };

/**
 * Asserts `|actual - expected| <= tolerance` (default `1e-7`, relative to `expected` when
 * it is large, as in `@std/assert`).
 *
 * @example
 * ```ts
 * assertAlmostEquals(0.1 + 0.2, 0.3);
 * ```
 */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance?: number,
  msg?: string,
): void {
  if (Object.is(actual, expected)) return;
  const tol = tolerance ?? Math.max(Math.abs(expected) * 1e-7, 1e-7);
  const delta = Math.abs(expected - actual);
  if (!(delta <= tol)) {
    fail(msg, `expected ${actual} to be close to ${expected} (delta ${delta} > ${tol})`);
  }
}

/**
 * Asserts that `actual` is greater than `expected`.
 *
 * @example
 * ```ts
 * assertGreater(2, 1);
 * ```
 */
export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual > expected)) fail(msg, `expected ${String(actual)} > ${String(expected)}`);
}

/**
 * Asserts that `actual` is less than `expected`.
 *
 * @example
 * ```ts
 * assertLess(1, 2);
 * ```
 */
export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual < expected)) fail(msg, `expected ${String(actual)} < ${String(expected)}`);
}

/**
 * Asserts that `actual` contains `expected` (strings or arrays).
 *
 * @example
 * ```ts
 * assertStringIncludes("hello", "ell");
 * ```
 */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    fail(msg, `expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`);
  }
}

/**
 * Asserts that `actual` matches a regular expression.
 *
 * @example
 * ```ts
 * assertMatch("abc", /b/);
 * ```
 */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (!expected.test(actual)) fail(msg, `expected ${JSON.stringify(actual)} to match ${expected}`);
}

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

function checkError<E extends Error>(
  e: unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
  msg?: string,
): E {
  if (ErrorClass && !(e instanceof ErrorClass)) {
    fail(
      msg,
      `expected error of class ${ErrorClass.name}, got ${
        e instanceof Error ? `${e.name}: ${e.message}` : String(e)
      }`,
    );
  }
  const err = e as E;
  if (msgIncludes !== undefined && !String(err?.message).includes(msgIncludes)) {
    fail(
      msg,
      `expected error message to include ${JSON.stringify(msgIncludes)}, got ${
        JSON.stringify(err?.message)
      }`,
    );
  }
  return err;
}

/**
 * Asserts that `fn` throws, optionally an instance of `ErrorClass` whose message includes
 * `msgIncludes`. Returns the error.
 *
 * @example
 * ```ts
 * assertThrows(() => { throw new TypeError("bad"); }, TypeError, "bad");
 * ```
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
  msg?: string,
): E {
  try {
    fn();
  } catch (e) {
    return checkError(e, ErrorClass, msgIncludes, msg);
  }
  fail(msg, "expected function to throw");
}

/**
 * Asserts that the promise returned by `fn` rejects, like {@linkcode assertThrows}.
 *
 * @example
 * ```ts
 * await assertRejects(() => Promise.reject(new Error("no")), Error, "no");
 * ```
 */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
  msg?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    return checkError(e, ErrorClass, msgIncludes, msg);
  }
  fail(msg, "expected promise to reject");
}

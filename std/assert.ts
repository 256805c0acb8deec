/**
 * A small stand-in for `jsr:@std/assert` built on `node:assert/strict`, because the JSR
 * registry is unreachable here. Mapped as `@std/assert` in `deno.json`.
 *
 * How it differs from `@std/assert` 1.x, exactly (so that pointing `deno.json`'s
 * `@std/assert` at `jsr:@std/assert@^1` is the only change the tests need):
 *
 * - It has only the functions the tests use: `assert`, `assertEquals`, `assertNotEquals`,
 *   `assertStrictEquals`, `assertAlmostEquals`, `assertGreater`, `assertLess`,
 *   `assertStringIncludes`, `assertMatch`, `assertThrows`, `assertRejects` and
 *   `AssertionError`, with the real signatures and return values (`assertThrows` and
 *   `assertRejects` return the error).
 * - `assertEquals` / `assertNotEquals` compare with `node:assert`'s `deepStrictEqual`, not
 *   `@std/assert`'s own `equal`. They agree on what the tests compare (primitives, plain
 *   objects, arrays, typed arrays, `Map`s, `Set`s, class instances of the same class); they
 *   have not been checked against each other on exotic values (symbol keys, getters,
 *   `WeakMap`s), where a real-package run may disagree.
 * - Failure messages are worded differently (no coloured diff); tests here never match
 *   on an assertion's own message.
 * - `assertAlmostEquals`'s default tolerance is the real one: `|expected| * 1e-7` for a finite
 *   `expected` (so `0` only equals `0` then) and `1e-7` otherwise. (Up to this commit the
 *   stand-in used `max(|expected| * 1e-7, 1e-7)`; every call in the tests passes a tolerance.)
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(1 + 1, 2);
 * ```
 * @module
 */
import assert from "node:assert/strict";

/**
 * Assertion calls made in this isolate (one per call of an exported `assert*`). With
 * `SKIPDECODE_ASSERT_COUNT=FILE` set, a line `N<TAB>module` is appended to `FILE` when the
 * isolate ends, so a run of the suite can count the assertions it executed (`deno task test`
 * passes the variable through; `tests/run.ts` sums the lines).
 */
let calls = 0;
const sink = (() => {
  try {
    return Deno.env.get("SKIPDECODE_ASSERT_COUNT");
  } catch {
    return undefined; // no env permission: not counting
  }
})();
if (sink) {
  globalThis.addEventListener("unload", () => {
    Deno.writeTextFileSync(sink, `${calls}\t${Deno.mainModule}\n`, { append: true });
  });
}

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
  calls++;
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
  calls++;
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
  calls++;
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
  calls++;
  if (!expr) throw new AssertionError(msg);
}
export { assert_ as assert };

/**
 * Asserts `|actual - expected| <= tolerance`; the default tolerance is `@std/assert`'s:
 * `|expected| * 1e-7` for a finite `expected`, else `1e-7`.
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
  calls++;
  if (Object.is(actual, expected)) return;
  const tol = tolerance ?? (Number.isFinite(expected) ? Math.abs(expected * 1e-7) : 1e-7);
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
  calls++;
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
  calls++;
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
  calls++;
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
  calls++;
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
  calls++;
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
  calls++;
  try {
    await fn();
  } catch (e) {
    return checkError(e, ErrorClass, msgIncludes, msg);
  }
  fail(msg, "expected promise to reject");
}

/**
 * Moved to `tests/helpers.ts` (the tests' one helpers module); this re-export stays only until
 * no test imports it.
 *
 * @module
 */
export { BUNDLED, missingShared, SHARED, sharedPath } from "./helpers.ts";

// The suite's password-hashing cost, shared by in-process servers (server.ts) and `sat` processes (cli.ts).

/**
 * The scrypt cost (config PASSWORD_HASH_COST, log2 N) the suite's servers and `sat` commands hash with: the floor,
 * 12, where production uses 15. The suite signs in and sets passwords hundreds of times; a test about hashing
 * itself passes PASSWORD_HASH_COST: '15' (test/integration/password-hashing.test.ts).
 */
export const TEST_PASSWORD_HASH_COST = '12';

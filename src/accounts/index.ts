// Organisations and administrators: creation, first start, password hashing.
export { addAdmin, addAdminInput, ensureFirstAdmin, type AddAdminInput, type AddAdminResult } from './service.js';
export { findAdminById, findOrganisationById, findOrganisationByName } from './queries.js';
export { hashPassword, verifyPassword, generatePassword, dummyPasswordHash } from './passwords.js';

// The safe directory's first migration, so this directory continues the same history.
export { up, down } from '../migrations/0001_create_orders.js';

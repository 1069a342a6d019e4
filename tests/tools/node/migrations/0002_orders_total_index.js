// The index on orders.total, built without blocking writes. CREATE INDEX CONCURRENTLY
// cannot run in a transaction: noTransaction() runs this migration outside one.
export const up = (pgm) => {
  pgm.noTransaction();
  pgm.createIndex('orders', 'total', { name: 'orders_total_idx', concurrently: true });
};

export const down = (pgm) => {
  pgm.noTransaction();
  pgm.dropIndex('orders', 'total', { name: 'orders_total_idx', concurrently: true });
};

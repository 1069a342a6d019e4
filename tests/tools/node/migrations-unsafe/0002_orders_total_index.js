// The index on orders.total as a plain CREATE INDEX, which blocks writes to orders for
// the whole build.
export const up = (pgm) => {
  pgm.createIndex('orders', 'total', { name: 'orders_total_idx' });
};

export const down = (pgm) => {
  pgm.dropIndex('orders', 'total', { name: 'orders_total_idx' });
};
